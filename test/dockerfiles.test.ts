import * as fs from "fs";
import * as path from "path";
import { DockerfileParser, From } from "dockerfile-ast";
import { checkDockerfile, copiedPaths, globalArgDefaults, RuleId } from "../tools/dockerfile-lint";
import { ROOT } from "../tools/harness";
import { PORTS } from "../lib/contracts";

const APP = path.join(ROOT, "app");
const DOCKERFILES = path.join(ROOT, "dockerfiles");

/** Image -> the port its service listens on, from lib/contracts.ts (PORTS); base serves nothing. */
const PORT_OF: Record<string, keyof typeof PORTS | undefined> = {
    base: undefined,
    "airflow-scheduler": "airflowWorkerLogs",
    "airflow-webserver": "airflowWebserver",
    "airflow-worker": "airflowWorkerLogs",
    fastapi: "fastapi",
    fingpt: "fingpt",
    mlflow: "mlflow",
};
const IMAGES = Object.keys(PORT_OF);

function contractPorts(image: string): number[] {
    const key = PORT_OF[image];
    return key ? [PORTS[key]] : [];
}

function read(image: string): string {
    return fs.readFileSync(path.join(DOCKERFILES, `Dockerfile.${image}`), "utf8");
}

function finalFrom(text: string): From {
    const froms = DockerfileParser.parse(text).getFROMs();
    return froms[froms.length - 1];
}

function requirementNames(file: string): string[] {
    return fs
        .readFileSync(path.join(APP, "requirements", file), "utf8")
        .split("\n")
        .map((l) => l.replace(/#.*/, "").trim())
        .filter(Boolean)
        .map((l) => l.split(/[=<>[;\s]/)[0].toLowerCase());
}

describe("the seven Dockerfiles pass every rule", () => {
    test("there is exactly one Dockerfile per image", () => {
        const files = fs.readdirSync(DOCKERFILES).filter((f) => f.startsWith("Dockerfile."));
        expect(files.sort()).toEqual(IMAGES.map((i) => `Dockerfile.${i}`).sort());
    });

    test.each(IMAGES)("Dockerfile.%s has no violations", (image) => {
        const violations = checkDockerfile(read(image), {
            context: APP,
            expectedPorts: contractPorts(image),
        });
        expect(violations).toEqual([]);
    });

    test("the contract ports are the ones each service listens on", () => {
        expect(Object.fromEntries(IMAGES.map((i) => [i, contractPorts(i)]))).toEqual({
            base: [],
            "airflow-scheduler": [8793],
            "airflow-webserver": [8080],
            "airflow-worker": [8793],
            fastapi: [8000],
            fingpt: [8001],
            mlflow: [5000],
        });
    });
});

describe("each image does what the seed meant it to", () => {
    test("fx-fastapi and fx-mlflow build every stage FROM the base image's digest (ARG BASE_IMAGE, no default)", () => {
        for (const image of ["fastapi", "mlflow"]) {
            const text = read(image);
            expect(
                DockerfileParser.parse(text)
                    .getFROMs()
                    .map((f) => f.getImage()),
            ).toEqual(["${BASE_IMAGE}", "${BASE_IMAGE}"]);
            expect(globalArgDefaults(text)).toHaveProperty("BASE_IMAGE", null);
        }
    });

    test("fx-base is Python 3.11 slim on an exact tag", () => {
        expect(finalFrom(read("base")).getImage()).toMatch(/^python:3\.11\.\d+-slim-bookworm$/);
    });

    test("fx-fingpt runs on a CUDA runtime base and installs torch, transformers, peft, accelerate, bitsandbytes", () => {
        const text = read("fingpt");
        const from = finalFrom(text);
        expect(from.getImageName()).toBe("nvidia/cuda");
        expect(from.getImageTag()).toMatch(/^\d+\.\d+\.\d+-(cudnn-)?runtime-ubuntu\d+\.\d+$/);
        expect(copiedPaths(text)).toContain("requirements/fingpt.txt");
        expect(requirementNames("fingpt.txt")).toEqual(
            expect.arrayContaining(["torch", "transformers", "peft", "accelerate", "bitsandbytes"]),
        );
    });

    test("fx-mlflow installs its lock, which must pin MLFLOW_VERSION, with the Postgres driver", () => {
        const text = read("mlflow");
        expect(text).toContain('grep -q "^mlflow==${MLFLOW_VERSION} " /tmp/requirements/mlflow.lock');
        expect(copiedPaths(text)).toContain("requirements/locks/mlflow.txt");
        expect(requirementNames("mlflow.txt").some((n) => /^psycopg2?(-binary)?$/.test(n))).toBe(true);
    });

    test("fx-base, fx-fastapi and fx-mlflow install their locks, every file's hash checked, no dependency resolved", () => {
        for (const [image, lock] of [
            ["base", "base"],
            ["fastapi", "fastapi"],
            ["mlflow", "mlflow"],
        ]) {
            const text = read(image);
            expect(copiedPaths(text)).toContain(`requirements/locks/${lock}.txt`);
            expect(text).toMatch(
                new RegExp(
                    `pip wheel --no-cache-dir --require-hashes --no-deps .* -r /tmp/requirements/${lock}\\.lock`,
                ),
            );
            expect(text).toMatch(
                /pip --python \/opt\/venv\/bin\/python install --no-index --no-deps|pip --python "\$VIRTUAL_ENV\/bin\/python" install --no-index --no-deps/,
            );
        }
    });

    test.each(["airflow-scheduler", "airflow-webserver", "airflow-worker"])(
        "fx-%s is apache/airflow:${AIRFLOW_VERSION}-python3.11 with the postgres, redis, celery and statsd pieces",
        (image) => {
            const text = read(image);
            expect(finalFrom(text).getImage()).toBe("apache/airflow:${AIRFLOW_VERSION}-python3.11");
            // The lock, hash-checked, wheels only, after a check that it pins the base image's own release.
            expect(copiedPaths(text)).toContain("requirements/locks/airflow.txt");
            expect(copiedPaths(text)).not.toContain("requirements/airflow.txt");
            expect(text).toContain('grep -q "^apache-airflow==${AIRFLOW_VERSION} " /tmp/requirements/airflow.lock');
            expect(text).toContain(
                "pip install --no-cache-dir --require-hashes --only-binary=:all: -r /tmp/requirements/airflow.lock",
            );
            expect(requirementNames("airflow.txt")).toEqual(
                expect.arrayContaining([
                    "apache-airflow",
                    "apache-airflow-providers-postgres",
                    "apache-airflow-providers-redis",
                    "apache-airflow-providers-celery",
                    "statsd",
                ]),
            );
        },
    );

    test("only the worker carries the Feast repo and the pipeline configs", () => {
        expect(copiedPaths(read("airflow-worker"))).toEqual(expect.arrayContaining(["feast_repo", "configs"]));
        for (const image of ["airflow-scheduler", "airflow-webserver"]) {
            expect(copiedPaths(read(image))).not.toContain("feast_repo");
        }
    });

    test("the version build args default to app/requirements/versions.env", () => {
        const env = Object.fromEntries(
            fs
                .readFileSync(path.join(APP, "requirements", "versions.env"), "utf8")
                .split("\n")
                .filter((l) => /^[A-Z_]+=/.test(l))
                .map((l) => l.split("=") as [string, string]),
        );
        for (const image of ["airflow-scheduler", "airflow-webserver", "airflow-worker"]) {
            expect(globalArgDefaults(read(image)).AIRFLOW_VERSION).toBe(env.AIRFLOW_VERSION);
        }
        expect(globalArgDefaults(read("mlflow")).MLFLOW_VERSION).toBe(env.MLFLOW_VERSION);
    });

    test("dockerfiles/README.md documents every path the Dockerfiles copy from the build context", () => {
        const readme = fs.readFileSync(path.join(DOCKERFILES, "README.md"), "utf8");
        const paths = new Set(IMAGES.flatMap((i) => copiedPaths(read(i))));
        const missing = [...paths].filter((p) => !readme.includes(`\`${p}\``));
        expect(missing).toEqual([]);
    });
});

/** A compliant Dockerfile; each failing example below breaks exactly one rule of it. */
const GOOD = `
FROM python:3.11.18-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential
COPY requirements/base.txt /tmp/base.txt
RUN pip wheel --wheel-dir /wheels -r /tmp/base.txt
FROM python:3.11.18-slim-bookworm
COPY requirements/base.txt /tmp/base.txt
RUN pip install -r /tmp/base.txt
COPY src/fx_pipeline /app/fx_pipeline
EXPOSE 8000
ARG OCI_SOURCE
ARG OCI_REVISION
ARG OCI_VERSION
LABEL org.opencontainers.image.source=$OCI_SOURCE org.opencontainers.image.revision=$OCI_REVISION \\
      org.opencontainers.image.version=$OCI_VERSION
USER 1000:1000
`;

function rulesBroken(text: string, ports: number[] = [8000]): RuleId[] {
    return [...new Set(checkDockerfile(text, { context: APP, expectedPorts: ports }).map((v) => v.rule))];
}

describe("each rule rejects a Dockerfile that breaks it", () => {
    test("the compliant example passes", () => {
        expect(checkDockerfile(GOOD, { context: APP, expectedPorts: [8000] })).toEqual([]);
    });

    test.each([
        ["untagged base", GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM python\n")],
        ["latest base", GOOD.replace("FROM python:3.11.18-slim-bookworm AS", "FROM python:latest AS")],
        ["floating tag", GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM python:3.11-slim\n")],
        ["ARG base without default", `ARG PY\n${GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM ${PY}\n")}`],
        [
            "ARG base with a floating default",
            `ARG PY=python:3-slim\n${GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM ${PY}\n")}`,
        ],
        [
            "BASE_IMAGE with a tag default instead of a digest",
            `ARG BASE_IMAGE=localhost:5001/fx-base:dev\n${GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM ${BASE_IMAGE}\n")}`,
        ],
        [
            "COPY --from an unpinned image",
            GOOD.replace("COPY src/", "COPY --from=ghcr.io/astral-sh/uv /uv /bin/uv\nCOPY src/"),
        ],
    ])("pinned-base: %s", (_what, text) => {
        expect(rulesBroken(text)).toEqual(["pinned-base"]);
    });

    test("pinned-base accepts BASE_IMAGE bound to a digest and an ARG with an exact default", () => {
        const digest = `localhost:5001/fx-base@sha256:${"a".repeat(64)}`;
        const viaBase = `ARG BASE_IMAGE=${digest}\n${GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM ${BASE_IMAGE}\n")}`;
        const viaArg = `ARG V=3.3.2\n${GOOD.replace("FROM python:3.11.18-slim-bookworm\n", "FROM apache/airflow:${V}-python3.11\n")}`;
        expect(rulesBroken(viaBase)).toEqual([]);
        expect(rulesBroken(viaArg)).toEqual([]);
    });

    test.each([
        ["no USER", GOOD.replace("USER 1000:1000\n", "")],
        ["USER root", GOOD.replace("USER 1000:1000", "USER root")],
        ["USER 0", GOOD.replace("USER 1000:1000", "USER 0:0")],
        ["a user name Kubernetes cannot verify", GOOD.replace("USER 1000:1000", "USER fxuser")],
        ["root again after a non-root USER", `${GOOD}USER root\n`],
    ])("non-root-user: %s", (_what, text) => {
        expect(rulesBroken(text)).toEqual(["non-root-user"]);
    });

    test.each([
        ["gcc", "RUN apt-get update && apt-get install -y gcc && rm -rf /var/lib/apt/lists/*"],
        [
            "g++ on a continuation line",
            "RUN apt-get update \\\n    && apt-get install -y --no-install-recommends \\\n        curl g++",
        ],
        ["build-essential", "RUN apt-get install -y build-essential"],
        ["git", "RUN apt-get install -y git"],
    ])("no-compilers-in-runtime: %s in the final stage", (_what, run) => {
        expect(rulesBroken(GOOD.replace("EXPOSE 8000", `${run}\nEXPOSE 8000`))).toEqual(["no-compilers-in-runtime"]);
    });

    test("no-compilers-in-runtime allows compilers in a build stage", () => {
        expect(GOOD).toContain("build-essential");
        expect(rulesBroken(GOOD)).toEqual([]);
    });

    test.each([
        ["ENV token literal", "ENV HF_TOKEN=hf_abc123"],
        ["ENV password among others", "ENV A=1 DB_PASSWORD=hunter2"],
        ["ENV Airflow Fernet key", "ENV AIRFLOW__CORE__FERNET_KEY=Zm9vYmFy"],
        ["ARG secret with a default", "ARG REGISTRY_SECRET=abc"],
        ["ARG secret without a default (lands in the image history)", "ARG GITHUB_TOKEN"],
    ])("no-secrets-in-build-config: %s", (_what, ins) => {
        expect(rulesBroken(GOOD.replace("EXPOSE 8000", `${ins}\nEXPOSE 8000`))).toEqual(["no-secrets-in-build-config"]);
    });

    test("no-secrets-in-build-config allows an empty ENV and one that references a variable", () => {
        expect(rulesBroken(GOOD.replace("EXPOSE 8000", 'ENV API_TOKEN="" HF_TOKEN_PATH=$HOME\nEXPOSE 8000'))).toEqual(
            [],
        );
    });

    test.each([
        ["a path missing from app/", "COPY docker/requirements.base.txt /tmp/"],
        ["a path outside the context", "COPY ../Pulumi.yaml /tmp/"],
        ["a path .dockerignore excludes", "COPY tests /app/tests"],
        ["a wildcard the check cannot verify", "COPY src/*.py /app/"],
    ])("copy-sources-exist: %s", (_what, copy) => {
        expect(rulesBroken(GOOD.replace("EXPOSE 8000", `${copy}\nEXPOSE 8000`))).toEqual(["copy-sources-exist"]);
    });

    test.each([
        ["a different port", GOOD.replace("EXPOSE 8000", "EXPOSE 8080")],
        ["no EXPOSE", GOOD.replace("EXPOSE 8000\n", "")],
        ["an extra port", GOOD.replace("EXPOSE 8000", "EXPOSE 8000 9090")],
    ])("exposed-ports: %s", (_what, text) => {
        expect(rulesBroken(text)).toEqual(["exposed-ports"]);
    });

    test("deps-before-code: requirements installed after the code is copied", () => {
        const text = GOOD.replace(
            "RUN pip install -r /tmp/base.txt\nCOPY src/fx_pipeline /app/fx_pipeline",
            "COPY src/fx_pipeline /app/fx_pipeline\nRUN pip install -r /tmp/base.txt",
        );
        expect(rulesBroken(text)).toEqual(["deps-before-code"]);
    });

    test("oci-labels: a missing or literal revision label", () => {
        expect(rulesBroken(GOOD.replace("org.opencontainers.image.revision=$OCI_REVISION", ""))).toEqual([
            "oci-labels",
        ]);
        expect(
            rulesBroken(
                GOOD.replace(
                    "org.opencontainers.image.revision=$OCI_REVISION",
                    "org.opencontainers.image.revision=abc",
                ),
            ),
        ).toEqual(["oci-labels"]);
    });
});
