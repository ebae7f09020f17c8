"""Base causal LM + LoRA adapter (peft), 8-bit on CUDA (bitsandbytes), scored with the FinGPT prompt."""

from __future__ import annotations

import logging

from .settings import FinGPTSettings

log = logging.getLogger(__name__)

LABELS = ("negative", "neutral", "positive")
PROMPT = ("Instruction: What is the sentiment of this news? Please choose an answer from "
          "{negative/neutral/positive}\nInput: {text}\nAnswer: ")


def build_prompt(text: str) -> str:
    return PROMPT.replace("{text}", text, 1)


class SentimentModel:
    """Scores each label by the model's next-token probability after the prompt (one forward pass).

    FinGPT's own scripts generate a few tokens and string-match the answer; scoring the three labels'
    first tokens gives the same argmax for a fine-tuned adapter, plus a usable probability, in one pass.
    """

    def __init__(self, settings: FinGPTSettings) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        src = settings.base_model
        kwargs: dict = {}
        self.quantized = False
        if self.device == "cuda":
            if settings.load_in_8bit:
                from transformers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
                self.quantized = True
            else:
                kwargs["dtype"] = torch.float16
            kwargs["device_map"] = "auto"
        log.info("loading base model %s on %s (8-bit: %s)", src, self.device, self.quantized)
        tok_src = settings.adapter or src
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tok_src)
        except (OSError, ValueError):
            self.tokenizer = AutoTokenizer.from_pretrained(src)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
        if settings.adapter:
            from peft import PeftModel

            log.info("applying LoRA adapter %s", settings.adapter)
            model = PeftModel.from_pretrained(model, settings.adapter)
        if self.device == "cpu":
            model = model.to("cpu")
        model.eval()
        self.model = model
        self.max_input_tokens = settings.max_input_tokens
        self.label_ids = []
        for label in LABELS:
            ids = self.tokenizer.encode(label, add_special_tokens=False)
            if not ids:
                raise ValueError(f"tokenizer of {src} turns label {label!r} into no tokens")
            self.label_ids.append(ids[0])
        if len(set(self.label_ids)) != len(LABELS):
            raise ValueError(f"labels {LABELS} share a first token in {src}'s tokenizer: cannot score them")
        self.adapter = settings.adapter
        self.base_model = src

    def analyze(self, texts: list[str]) -> list[tuple[str, float]]:
        torch = self.torch
        prompts = [build_prompt(t) for t in texts]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                             max_length=self.max_input_tokens)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        with torch.inference_mode():
            logits = self.model(**enc).logits[:, -1, :]  # left padding: last position is the answer slot
        probs = torch.softmax(logits[:, self.label_ids].float(), dim=-1).cpu()
        out = []
        for row in probs:
            i = int(row.argmax())
            out.append((LABELS[i], round(float(row[i]), 4)))
        return out
