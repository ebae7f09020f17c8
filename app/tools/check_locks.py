"""Every lock in app/requirements/ agrees with the requirements it was compiled from (standard library only).

A lock (``<image>.lock``, ``<image>-test.lock``) is the output of ``uv pip compile``; its header records the command,
so the inputs (``*.txt``) and the locks it was constrained by (``-c X.lock``) are read from there. Refused:
- an input pinned ``name==v`` that the lock lacks or pins to another version (the input changed, the lock did not);
- a package pinned in both a lock and a lock it was constrained by, at different versions (the layers disagree);
- a pin without ``--hash`` (the installs run in pip's and uv's hash-checking mode);
- a lock pinning apache-airflow other than versions.env's AIRFLOW_VERSION (the Dockerfiles' and venv's default).

Usage: python app/tools/check_locks.py [REQUIREMENTS_DIR]   (exit 1 and one line per problem when they disagree)
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[A-Za-z0-9_,.-]+\])?==([A-Za-z0-9_.+!-]+)")
VERSION_KEYS = {"apache-airflow": "AIRFLOW_VERSION", "mlflow": "MLFLOW_VERSION"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a requirements file's ``==`` lines (comments and options skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            pins[norm(m.group(1))] = m.group(3)
    return pins


def read_lock(path: Path) -> tuple[dict[str, str], list[str], list[str], list[str]]:
    """The lock's pins, the inputs and constraint files of its header's command, and pins that carry no hash."""
    text = path.read_text()
    lines = text.splitlines()
    command = next((ln.lstrip("# ").strip() for ln in lines[:5] if "pip compile" in ln), None)
    if command is None:
        raise ValueError(f"{path.name}: no 'uv pip compile' command in its header: write it with uv pip compile")
    args = shlex.split(command)
    inputs, constraints = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-c", "--constraint", "--constraints"):
            constraints.append(args[i + 1])
            i += 2
            continue
        if a in ("-o", "--output-file"):
            i += 2
            continue
        if a.endswith((".txt", ".in")) and not a.startswith("-"):
            inputs.append(a)
        i += 1
    pins, unhashed = {}, []
    # one entry: "name==version [; marker] \" then "--hash=..." lines, then "# via" comments
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = PIN.match(block)
        if not m:
            continue
        pins[norm(m.group(1))] = m.group(3)
        if "--hash=sha256:" not in block:
            unhashed.append(m.group(1))
    return pins, inputs, constraints, unhashed


def read_versions(req_dir: Path) -> dict[str, str]:
    path = req_dir / "versions.env"
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def check(req_dir: Path) -> list[str]:
    problems: list[str] = []
    versions = read_versions(req_dir)
    for lock in sorted(req_dir.glob("*.lock")):
        try:
            pins, inputs, constraints, unhashed = read_lock(lock)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not inputs:
            problems.append(f"{lock.name}: its header names no requirements file")
        for name in unhashed:
            problems.append(f"{lock.name}: {name} has no --hash (compile with --generate-hashes)")
        for inp in inputs:
            src = req_dir / inp
            if not src.exists():
                problems.append(f"{lock.name}: compiled from {inp}, which does not exist")
                continue
            for name, version in read_pins(src).items():
                if name not in pins:
                    problems.append(f"{lock.name}: {inp} pins {name}=={version}, the lock lacks {name}")
                elif pins[name] != version:
                    problems.append(f"{lock.name}: {inp} pins {name}=={version}, the lock {name}=={pins[name]}")
        for con in constraints:
            other = req_dir / con
            if not other.exists():
                problems.append(f"{lock.name}: constrained by {con}, which does not exist")
                continue
            base = read_lock(other)[0]
            for name in sorted(pins.keys() & base.keys()):
                if pins[name] != base[name]:
                    problems.append(f"{lock.name}: {name}=={pins[name]}, but {con} (its base) has {base[name]}")
        for name, key in VERSION_KEYS.items():
            if name in pins and key in versions and pins[name] != versions[key]:
                problems.append(f"{lock.name}: {name}=={pins[name]}, but versions.env {key}={versions[key]}")
    return problems


def main(argv: list[str]) -> int:
    req_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "requirements"
    problems = check(req_dir)
    for p in problems:
        print(f"lock check: {p}", file=sys.stderr)
    if problems:
        print("lock check: rerun the lock script of that image (scripts/lock-*.sh) and commit the lock", file=sys.stderr)
        return 1
    print(f"lock check: {len(list(req_dir.glob('*.lock')))} locks agree with their requirements")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
