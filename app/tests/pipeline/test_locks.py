"""The lock check (tools/check_locks.py, run by scripts/test-python.sh): passes on the committed locks and fails, naming
the package, when a lock and its requirements disagree."""

import importlib.util
import shutil
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_locks", APP / "tools" / "check_locks.py")
check_locks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_locks)


@pytest.fixture
def req(tmp_path):
    d = tmp_path / "requirements"
    shutil.copytree(APP / "requirements", d)
    return d


def test_the_committed_locks_agree():
    assert check_locks.check(APP / "requirements") == []
    pins = check_locks.read_lock(APP / "requirements" / "airflow.lock")[0]
    assert pins["apache-airflow"] == "3.3.2" and pins["apache-airflow-providers-fab"]  # the admin Job's auth manager
    assert check_locks.read_lock(APP / "requirements" / "airflow-test.lock")[0]["pytest"] == "9.2.0"


def test_the_venv_holds_the_lock():
    """This suite's own venv (scripts/test-python.sh) holds the locks' packages at their versions, and nothing else
    but fx-pipeline itself."""
    from importlib.metadata import distributions

    have = {check_locks.norm(d.metadata["Name"]): d.version for d in distributions()}
    locked: dict[str, str] = {}
    for lock in ("airflow.lock", "airflow-test.lock"):
        pins = check_locks.read_lock(APP / "requirements" / lock)[0]
        wrong = {n: (v, have.get(n)) for n, v in pins.items() if have.get(n) != v}
        assert wrong == {}, lock
        locked |= pins
    assert sorted(set(have) - set(locked)) == ["fx-pipeline"]


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda d: _sub(d / "airflow.txt", "xgboost==3.2.0", "xgboost==3.1.0"),
     "airflow.lock: airflow.txt pins xgboost==3.1.0, the lock xgboost==3.2.0"),
    (lambda d: _append(d / "airflow.txt", "tenacity-extra-pkg==1.0.0"),
     "airflow.lock: airflow.txt pins tenacity-extra-pkg==1.0.0, the lock lacks tenacity-extra-pkg"),
    (lambda d: _sub(d / "airflow-test.lock", "pytest==9.2.0", "pytest==9.1.0"),
     "airflow-test.lock: airflow-test.txt pins pytest==9.2.0, the lock pytest==9.1.0"),
    (lambda d: _sub(d / "airflow-test.lock", "packaging==26.3", "packaging==26.2"),
     "airflow-test.lock: packaging==26.2, but airflow.lock (its base) has 26.3"),
    (lambda d: _sub(d / "versions.env", "AIRFLOW_VERSION=3.3.2", "AIRFLOW_VERSION=3.3.1"),
     "airflow.lock: apache-airflow==3.3.2, but versions.env AIRFLOW_VERSION=3.3.1"),
    (lambda d: _append(d / "airflow.lock", "zzz-unhashed==1.0"),
     "airflow.lock: zzz-unhashed has no --hash (compile with --generate-hashes)"),
])
def test_a_lock_that_disagrees_fails_naming_it(req, edit, problem):
    edit(req)
    assert problem in check_locks.check(req)
    assert check_locks.main(["check_locks.py", str(req)]) == 1


def _sub(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path.name, old)
    path.write_text(text.replace(old, new))


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line + "\n")
