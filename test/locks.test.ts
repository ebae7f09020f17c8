import * as fs from "fs";
import * as path from "path";
import { ROOT } from "../tools/harness";
import { checkAppLocks, checkLocks, parseLock } from "../tools/python-locks";

const REQ = path.join(ROOT, "app", "requirements");
const LOCKS = [
    "locks/airflow.txt",
    "locks/airflow-test.txt",
    "locks/base.txt",
    "locks/fastapi.txt",
    "locks/fastapi-test.txt",
    "locks/mlflow.txt",
    "locks/mlflow-test.txt",
];
const read = (rel: string) => fs.readFileSync(path.join(REQ, rel), "utf8");
const VERSIONS = { AIRFLOW_VERSION: "3.3.2", MLFLOW_VERSION: "3.17.2" };

/** checkLocks over the real files with one file's text replaced (undefined: the file is gone). */
function checkWith(rel: string, edit: (text: string) => string | undefined, locks: readonly string[] = LOCKS) {
    return checkLocks(locks, (r) => (r === rel ? edit(read(r)) : read(r)), VERSIONS);
}

describe("the Python locks agree with the requirement files they were resolved from", () => {
    test("one lock per image and one per test venv, layered base <- image <- test and airflow <- airflow-test", () => {
        expect(fs.readdirSync(path.join(REQ, "locks")).sort()).toEqual(LOCKS.map((l) => path.basename(l)).sort());
        const layers = Object.fromEntries(
            LOCKS.map((l) => {
                const p = parseLock(read(l));
                return [l, [p.inputs, p.constraints]];
            }),
        );
        expect(layers).toEqual({
            "locks/airflow.txt": [["airflow.txt"], []],
            "locks/airflow-test.txt": [["airflow.txt", "airflow-test.txt"], ["locks/airflow.txt"]],
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

    test("versions.env's Airflow is the one airflow.txt pins, with the FAB provider (the admin Job's auth manager)", () => {
        expect(read("versions.env")).toMatch(/^AIRFLOW_VERSION=3\.3\.2$/m);
        expect(read("airflow.txt")).toMatch(/^apache-airflow\[celery,fab,postgres,redis,statsd\]==3\.3\.2$/m);
        const entries = parseLock(read("locks/airflow.txt")).entries;
        const version = (name: string) => entries.find((e) => e.name === name)?.version;
        expect(version("apache-airflow")).toBe("3.3.2");
        expect(version("apache-airflow-providers-fab")).toBeDefined();
        expect(version("statsd")).toBe("4.0.1");
        expect(parseLock(read("locks/airflow-test.txt")).entries.find((e) => e.name === "pytest")?.version).toBe(
            "9.2.0",
        );
    });

    test("the Airflow locks hold one entry per package, none behind a marker (resolved for the image's platform)", () => {
        for (const lock of ["locks/airflow.txt", "locks/airflow-test.txt"]) {
            const entries = parseLock(read(lock)).entries;
            expect(entries.filter((e) => e.marker !== undefined)).toEqual([]);
            expect(new Set(entries.map((e) => e.name)).size).toBe(entries.length);
        }
        expect(parseLock(read("locks/airflow.txt")).entries).toHaveLength(217);
        expect(parseLock(read("locks/airflow-test.txt")).entries).toHaveLength(219);
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
        expect(checkWith("airflow.txt", (t) => t.replace("xgboost==3.2.0", "xgboost==3.1.0"))).toEqual([
            { lock: "locks/airflow.txt", problem: "airflow.txt pins xgboost==3.1.0; the lock has 3.2.0" },
            { lock: "locks/airflow-test.txt", problem: "airflow.txt pins xgboost==3.1.0; the lock has 3.2.0" },
        ]);
    });

    test("a requirement added without re-locking", () => {
        const onBase = ["base", "fastapi", "fastapi-test", "mlflow", "mlflow-test"].map((l) => `locks/${l}.txt`);
        expect(checkWith("base.txt", (t) => `${t}orjson==3.11.0\n`)).toEqual(
            onBase.map((lock) => ({ lock, problem: "base.txt pins orjson==3.11.0; the lock lacks it" })),
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

    test("a lock whose apache-airflow or mlflow is not versions.env's release", () => {
        const airflow = checkLocks(LOCKS, read, { ...VERSIONS, AIRFLOW_VERSION: "3.3.1" });
        expect(airflow).toEqual([
            {
                lock: "locks/airflow.txt",
                problem: "pins apache-airflow 3.3.2; versions.env's AIRFLOW_VERSION is 3.3.1",
            },
            {
                lock: "locks/airflow-test.txt",
                problem: "pins apache-airflow 3.3.2; versions.env's AIRFLOW_VERSION is 3.3.1",
            },
        ]);
        const mlflow = checkLocks(LOCKS, read, { ...VERSIONS, MLFLOW_VERSION: "3.17.1" });
        expect(mlflow).toEqual([
            { lock: "locks/mlflow.txt", problem: "pins mlflow 3.17.2; versions.env's MLFLOW_VERSION is 3.17.1" },
            { lock: "locks/mlflow-test.txt", problem: "pins mlflow 3.17.2; versions.env's MLFLOW_VERSION is 3.17.1" },
        ]);
    });

    test("a pin of the Airflow test lock that its image lock holds at another version", () => {
        const lock = "locks/airflow-test.txt";
        expect(checkWith(lock, (t) => t.replace(/^packaging==26\.3 /m, "packaging==26.2 "))).toEqual([
            { lock, problem: "packaging==26.3 of locks/airflow.txt is not in this lock at that version" },
        ]);
    });

    test("a requirement file or a lock below that does not exist", () => {
        expect(checkWith("airflow-test.txt", () => undefined)).toEqual([
            { lock: "locks/airflow-test.txt", problem: "resolved from airflow-test.txt, which does not exist" },
        ]);
        expect(checkWith("locks/airflow.txt", () => undefined)).toEqual([
            { lock: "locks/airflow.txt", problem: "it does not exist" },
        ]);
        expect(checkWith("locks/airflow.txt", () => undefined, ["locks/airflow-test.txt"])).toEqual([
            { lock: "locks/airflow-test.txt", problem: "constrained by locks/airflow.txt, which does not exist" },
        ]);
    });

    test("a header that names no requirement file, and a lock without the header", () => {
        const lock = "locks/fastapi.txt";
        const noInputs = checkWith(lock, (t) => t.replace("from base.txt fastapi.txt -c", "from -c"));
        expect(noInputs).toEqual([{ lock, problem: "its header names no requirement file" }]);
        const noHeader = checkWith(lock, (t) => t.replace(/^# Lock: .*\n/, "# written by hand\n"));
        expect(noHeader).toEqual([
            { lock, problem: "the first line does not name the lock's inputs (scripts/lock-python.sh writes it)" },
        ]);
    });
});
