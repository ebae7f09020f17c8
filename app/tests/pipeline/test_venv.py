"""This suite's venv (scripts/test-python.sh: locks/airflow-test.txt, then fx_pipeline over it) is the Airflow images'
package set plus pytest: every package of the lock at its locked version, and nothing else but fx-pipeline itself
(fx_pipeline's own ranges resolve to the lock's pins). test/locks.test.ts checks the lock against its requirements."""

import re
from importlib.metadata import distributions
from pathlib import Path

LOCK = Path(__file__).resolve().parents[2] / "requirements" / "locks" / "airflow-test.txt"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_venv_holds_the_lock():
    locked = {
        _norm(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", LOCK.read_text(), re.MULTILINE)
    }
    assert locked["apache-airflow"] == "3.3.2" and locked["pytest"] == "9.2.0"
    have = {_norm(d.metadata["Name"]): d.version for d in distributions()}
    assert {n: (v, have.get(n)) for n, v in locked.items() if have.get(n) != v} == {}
    assert sorted(set(have) - set(locked)) == ["fx-pipeline"]
