import * as fs from "fs";
import * as path from "path";
import { ROOT } from "../tools/harness";
import { checkAppLocks, checkLocks, parseLock } from "../tools/python-locks";

const REQ = path.join(ROOT, "app", "requirements");
const LOCKS = [
    "locks/base.txt",
    "locks/fastapi.txt",
    "locks/fastapi-test.txt",
    "locks/mlflow.txt",
    "locks/mlflow-test.txt",
];
const read = (rel: string) => fs.readFileSync(path.join(REQ, rel), "utf8");
const VERSIONS = { MLFLOW_VERSION: "3.17.2" };

/** checkLocks over the real files with one file's text replaced. */
function checkWith(rel: string, edit: (text: string) => string) {
    return checkLocks(LOCKS, (r) => (r === rel ? edit(read(r)) : read(r)), VERSIONS);
}

describe("the Python locks agree with the requirement files they were resolved from", () => {
    test("one lock per image built FROM fx-base and one per test venv, layered base <- image <- test", () => {
        expect(fs.readdirSync(path.join(REQ, "locks")).sort()).toEqual(LOCKS.map((l) => path.basename(l)).sort());
        const layers = Object.fromEntries(
            LOCKS.map((l) => {
                const p = parseLock(read(l));
                return [l, [p.inputs, p.constraints]];
            }),
        );
        expect(layers).toEqual({
            "locks/base.txt": [["base.txt"], []],
            "locks/fastapi.txt": [["base.txt", "fastapi.txt"], ["locks/base.txt"]],
            "locks/fastapi-test.txt": [["base.txt", "fastapi.txt", "fastapi-test.txt"], ["locks/fastapi.txt"]],
            "locks/mlflow.txt": [["base.txt", "mlflow.txt"], ["locks/base.txt"]],
            "locks/mlflow-test.txt": [["base.txt", "mlflow.txt", "mlflow-test.txt"], ["locks/mlflow.txt"]],
        });
    });

    test("every pin is in its lock at its version, every lock entry is required and hashed, layers move no pin", () => {
        expect(checkAppLocks(REQ)).toEqual([]);
    });

    test("versions.env's MLflow is the one mlflow.txt pins", () => {
        expect(read("versions.env")).toMatch(/^MLFLOW_VERSION=3\.17\.2$/m);
        expect(read("mlflow.txt")).toMatch(/^mlflow==3\.17\.2$/m);
    });

    test("the serving image's lock holds no Feast, pyarrow, scikit-learn, pandas or NVIDIA library", () => {
        const names = parseLock(read("locks/fastapi.txt")).entries.map((e) => e.name);
        expect(names).toContain("xgboost-cpu");
        for (const absent of ["feast", "pyarrow", "scikit-learn", "pandas", "xgboost", "protobuf-feast"]) {
            expect(names).not.toContain(absent);
        }
        expect(names.filter((n) => n.startsWith("nvidia-"))).toEqual([]);
    });
});

describe("each disagreement is named", () => {
    test("a requirement pin moved without re-locking", () => {
        expect(checkWith("fastapi.txt", (t) => t.replace("redis==6.4.0", "redis==6.5.0"))).toEqual([
            { lock: "locks/fastapi.txt", problem: "fastapi.txt pins redis==6.5.0; the lock has 6.4.0" },
            { lock: "locks/fastapi-test.txt", problem: "fastapi.txt pins redis==6.5.0; the lock has 6.4.0" },
        ]);
    });

    test("a requirement added without re-locking", () => {
        expect(checkWith("base.txt", (t) => `${t}orjson==3.11.0\n`)).toEqual(
            LOCKS.map((lock) => ({ lock, problem: "base.txt pins orjson==3.11.0; the lock lacks it" })),
        );
    });

    test("a requirement removed without re-locking leaves what only it needed unreachable", () => {
        const problems = checkWith("fastapi.txt", (t) => t.replace(/^redis==.*$/m, ""));
        expect(problems.filter((p) => p.lock === "locks/fastapi.txt")).toEqual([
            {
                lock: "locks/fastapi.txt",
                problem: "async-timeout==5.0.1 is required by nothing in base.txt, fastapi.txt (via redis)",
            },
            {
                lock: "locks/fastapi.txt",
                problem: "redis==6.4.0 is required by nothing in base.txt, fastapi.txt (via -r fastapi.txt)",
            },
        ]);
    });

    test("an entry without a hash, and a layer that moves a pin of the lock below", () => {
        const lock = "locks/fastapi.txt";
        const unhashed = checkWith(lock, (t) =>
            t.replace(/^(annotated-doc==0\.0\.7) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+\n/m, "$1\n"),
        );
        expect(unhashed).toEqual([{ lock, problem: "annotated-doc==0.0.7 has no --hash" }]);
        const moved = checkWith(lock, (t) => t.replace(/^pydantic-core==\S+/m, "pydantic-core==2.0.0"));
        expect(moved).toContainEqual({
            lock,
            problem: "pydantic-core==2.50.5 of locks/base.txt is not in this lock at that version",
        });
    });
});
