"""What our Python services read from the environment, as JSON, for the env contract test (test/contracts.test.ts).

Run with a service's venv python from app/ (the test does):
    python tools/env_reads.py --settings app.settings:ServiceSettings --files 'fastapi_service/app/*.py'

- ``--settings module:Class``: a pydantic-settings class, imported and introspected; each field's env names (its
  ``validation_alias``: a string, ``AliasChoices`` or ``AliasPath``) and whether it is required (no default).
- ``--files GLOB``: files under app/ that read the environment. Python files: the string names passed to
  ``os.environ.get``, ``os.environ[...]``, ``os.environ.setdefault``, ``os.getenv`` and ``"X" in os.environ`` (found
  with the ast module, never by running them). YAML files: every ``${VAR}`` in a value (comments excluded), each
  required, since Feast leaves an unset one as literal text.

Output: {"settings": {"module:Class": {"names": {...}, "required": [...]}}, "files": {"glob": {"reads": [...],
"required": [...], "matched": [...]}}}. Exits 2 with the reason when a class or file cannot be read.
"""

from __future__ import annotations

import argparse
import ast
import glob
import importlib
import json
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent
# The service packages that are not installed into the venvs: the images put them on the path (WORKDIR /app).
SOURCE_ROOTS = [APP / "fastapi_service", APP / "fingpt_service", APP / "src"]


def _alias_names(alias) -> list[str]:
    """The env names a pydantic validation_alias stands for (AliasChoices: each choice; AliasPath: its first key)."""
    from pydantic import AliasChoices, AliasPath

    if alias is None:
        return []
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])]
    if isinstance(alias, AliasChoices):
        return [n for choice in alias.choices for n in _alias_names(choice)]
    raise TypeError(f"unknown validation_alias type {type(alias).__name__}")


def settings_reads(spec: str) -> dict:
    module_name, _, class_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    prefix = cls.model_config.get("env_prefix", "")
    names: dict[str, list[str]] = {}
    required: list[str] = []
    for field_name, field in cls.model_fields.items():
        env = _alias_names(field.validation_alias) or ([field.alias] if field.alias else [prefix + field_name])
        # case_sensitive=False (every class here): the environment is matched without case; names are upper case.
        env = [n.upper() for n in env] if not cls.model_config.get("case_sensitive", False) else env
        names[field_name] = env
        if field.is_required():
            required.extend(env)
    return {"names": names, "required": sorted(set(required))}


def _python_reads(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))

    def is_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    def const(node: ast.AST | None) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    reads: set[str] = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            f = node.func
            if f.attr in ("get", "setdefault", "pop") and is_environ(f.value):
                name = const(node.args[0])
            elif f.attr == "getenv" and isinstance(f.value, ast.Name) and f.value.id == "os":
                name = const(node.args[0])
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            name = const(node.slice)
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            name = const(node.left)
        if name:
            reads.add(name)
    return reads


def _yaml_reads(path: Path) -> set[str]:
    # The pipeline's own reader of feature_store.yaml's ${VAR}s (runs in the pipeline venv, which has it and PyYAML).
    import yaml
    from fx_pipeline.feast_store import env_references

    return env_references(yaml.safe_load(path.read_text()))


def file_reads(pattern: str) -> dict:
    matched = sorted(glob.glob(str(APP / pattern)))
    if not matched:
        raise FileNotFoundError(f"no file under app/ matches {pattern!r}")
    reads: set[str] = set()
    required: set[str] = set()
    for f in map(Path, matched):
        if f.suffix == ".py":
            reads |= _python_reads(f)
        elif f.suffix in (".yaml", ".yml"):
            found = _yaml_reads(f)
            reads |= found
            required |= found
        else:
            raise ValueError(f"{f}: only .py and .yaml files are read")
    return {
        "reads": sorted(reads),
        "required": sorted(required),
        "matched": [str(Path(m).relative_to(APP)) for m in matched],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", action="append", default=[], metavar="module:Class")
    parser.add_argument("--files", action="append", default=[], metavar="GLOB")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(p) for p in SOURCE_ROOTS]
    out: dict = {"python": sys.executable, "settings": {}, "files": {}}
    try:
        for spec in args.settings:
            out["settings"][spec] = settings_reads(spec)
        for pattern in args.files:
            out["files"][pattern] = file_reads(pattern)
    except Exception as e:  # the caller shows this line: name what could not be read and why
        print(f"env_reads.py: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
