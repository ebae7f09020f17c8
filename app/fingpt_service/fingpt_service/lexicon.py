"""CPU-only fallback: a small finance sentiment lexicon (Loughran-McDonald style) with negation handling."""

from __future__ import annotations

import re

POSITIVE = {
    "beat", "beats", "boost", "boosts", "bullish", "climb", "climbs", "gain", "gains", "growth", "higher",
    "improve", "improved", "improves", "jump", "jumps", "outperform", "profit", "profits", "rally",
    "rallies", "record", "recover", "recovery", "rise", "rises", "rising", "soar", "soars", "strong",
    "stronger", "strengthens", "surge", "surges", "upgrade", "upgraded", "upbeat", "optimism", "robust",
}
NEGATIVE = {
    "bearish", "cut", "cuts", "decline", "declines", "default", "deficit", "downgrade", "downgraded",
    "drop", "drops", "fall", "falls", "falling", "fear", "fears", "loss", "losses", "lower", "miss",
    "misses", "plunge", "plunges", "recession", "risk", "selloff", "slump", "slumps", "slowdown", "tumble",
    "tumbles", "weak", "weaker", "weakens", "crisis", "inflation", "layoffs", "sanctions", "warning",
}
NEGATIONS = {"not", "no", "never", "without", "hardly", "fails", "failed"}
TOKEN = re.compile(r"[a-z]+")


def score_text(text: str) -> tuple[str, float]:
    """Label and a score in [0.5, 1): how sure the lexicon is of that label."""
    words = TOKEN.findall(text.lower())
    pos = neg = 0
    for i, w in enumerate(words):
        flip = any(p in NEGATIONS for p in words[max(0, i - 3) : i])
        if w in POSITIVE:
            pos, neg = (pos, neg + 1) if flip else (pos + 1, neg)
        elif w in NEGATIVE:
            pos, neg = (pos + 1, neg) if flip else (pos, neg + 1)
    if pos == neg:
        return "neutral", 0.5 if pos else 0.6
    label = "positive" if pos > neg else "negative"
    margin = abs(pos - neg) / (pos + neg)
    return label, round(0.5 + 0.45 * margin, 4)
