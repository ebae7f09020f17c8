/**
 * lib/contracts.ts is the one definition of the names, ports and env names the parts share. These tests hold the rest
 * of the repository to it:
 *   - no port number or env name of the contract is written anywhere else in the TypeScript sources, and no Secret
 *     name or key, model name or image path of it is a string literal anywhere else;
 *   - every env name each container of both stacks gets is read by the Python service it runs (introspected in the
 *     service's venv by app/tools/env_reads.py) or by a third party the contract names, and every setting the service
 *     requires is set;
 *   - the files outside TypeScript that state a port (the metrics catalogue, chart values) state the contract's.
 * The venvs come from `bash scripts/test-python.sh --venvs-only fastapi fingpt pipeline`, which scripts/test.sh runs
 * before jest; a missing venv fails here with that command, it is never skipped.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { parse } from "yaml";
import { reveal, ROOT, runStack, STACKS, StackName, StackRun } from "../tools/harness";
import {
    ENV,
    ENV_READERS,
    ENV_THIRD_PARTY,
    EnvReaders,
    IMAGE_PATHS,
    MODEL,
    PORTS,
    SECRETS,
    SettingsReader,
    ThirdParty,
} from "../lib/contracts";

// ---------------------------------------------------------------------------------------------------------------
// One definition: no contract port or env name outside lib/contracts.ts
// ---------------------------------------------------------------------------------------------------------------

const CONTRACTS = "lib/contracts.ts";
/** The program's TypeScript sources (tests and tools may write expected values down; see docs/decisions.md). */
const SOURCE_ROOTS = ["index.ts", "components", "lib", "config", "policy"];

function sourceFiles(): string[] {
    const walk = (rel: string): string[] => {
        const abs = path.join(ROOT, rel);
        if (fs.statSync(abs).isFile()) return rel.endsWith(".ts") ? [rel] : [];
        return fs
            .readdirSync(abs)
            .filter((f) => f !== "node_modules")
            .flatMap((f) => walk(path.join(rel, f)));
    };
    return SOURCE_ROOTS.flatMap(walk).sort();
}

/** Every string in a nested contract object. */
const strings = (node: unknown): string[] =>
    typeof node === "string" ? [node] : typeof node === "object" && node ? Object.values(node).flatMap(strings) : [];

/** Each source file's lines, read once for all the checks. */
const sourceLines = new Map<string, string[]>();

/** `file:line: text` of each line of a source file where `pattern` matches (comments included: they drift too). */
function occurrences(pattern: RegExp, files: string[]): string[] {
    const lines = (rel: string) => {
        if (!sourceLines.has(rel)) sourceLines.set(rel, fs.readFileSync(path.join(ROOT, rel), "utf8").split("\n"));
        return sourceLines.get(rel)!;
    };
    return files.flatMap((rel) =>
        lines(rel).flatMap((line, i) => (pattern.test(line) ? [`${rel}:${i + 1}: ${line.trim()}`] : [])),
    );
}

describe("lib/contracts.ts is the one definition", () => {
    const files = sourceFiles().filter((f) => f !== CONTRACTS);

    test("the scan covers the program's sources", () => {
        for (const f of ["index.ts", "components/apps/fastapi.ts", "lib/netpol.ts", "config/index.ts"]) {
            expect(files).toContain(f);
        }
        expect(files).toContain("policy/policies.ts");
    });

    test.each([...new Set(Object.values(PORTS))].sort((a, b) => a - b))(
        "port %i is written nowhere else in the TypeScript sources",
        (port) => {
            // A number on its own: not part of a longer number, a version or a name.
            expect(occurrences(new RegExp(`(?<![\\w.])${port}(?![\\w.])`), files)).toEqual([]);
        },
    );

    test.each([...new Set(strings(ENV))].sort())(
        "env name %s is written nowhere else in the TypeScript sources",
        (name) => {
            expect(occurrences(new RegExp(`(?<![\\w])${name}(?![\\w])`), files)).toEqual([]);
        },
    );
});

/** The string literals (template pieces included, comments not) of a TypeScript file, by the compiler's parser. */
function stringLiterals(rel: string): { text: string; at: string }[] {
    const file = ts.createSourceFile(rel, fs.readFileSync(path.join(ROOT, rel), "utf8"), ts.ScriptTarget.ES2022, true);
    const out: { text: string; at: string }[] = [];
    const visit = (node: ts.Node) => {
        if (
            ts.isStringLiteralLike(node) ||
            ts.isTemplateHead(node) ||
            ts.isTemplateMiddle(node) ||
            ts.isTemplateTail(node)
        ) {
            const line = file.getLineAndCharacterOfPosition(node.getStart()).line + 1;
            out.push({ text: node.text, at: `${rel}:${line}` });
        }
        ts.forEachChild(node, visit);
    };
    visit(file);
    return out;
}

describe("lib/contracts.ts is the one definition of the Secrets, the model and the image paths", () => {
    // Names that cannot be mistaken for another word: a single word such as "password" or "token" is also a KEDA
    // parameter, a data source or a chart name, and the names with a separator are the ones that only the contract
    // may spell.
    const distinctive = [...new Set(strings({ SECRETS, MODEL, IMAGE_PATHS }))].filter((s) => /[-._/]/.test(s)).sort();
    const literals = sourceFiles()
        .filter((f) => f !== CONTRACTS)
        .flatMap(stringLiterals);

    test("the names checked include every Secret name with a separator, its keys, the model and the paths", () => {
        expect(distinctive).toEqual(
            expect.arrayContaining([
                "airflow-keys",
                "fernet-key",
                "pg-",
                "requirepass.conf",
                "fx-usdsgd-predictor",
                "/var/cache/huggingface",
            ]),
        );
    });

    test.each(distinctive)("%s is a string literal nowhere else in the program's sources", (name) => {
        expect(literals.filter((l) => l.text === name).map((l) => l.at)).toEqual([]);
    });

    test("the scan sees string literals and template pieces, not comments", () => {
        const found = stringLiterals("components/platform/secrets.ts");
        expect(found.map((l) => l.text)).toContain("kubernetes.io/basic-auth");
        expect(found.map((l) => l.text)).not.toContain("fernet-key");
    });
});

// ---------------------------------------------------------------------------------------------------------------
// The env contract: TypeScript env names against the Python services' settings
// ---------------------------------------------------------------------------------------------------------------

const VENVS = process.env.VENVS_DIR ?? path.join(ROOT, ".venvs");
const VENVS_COMMAND = "bash scripts/test-python.sh --venvs-only fastapi fingpt pipeline";
/** The venv that reads the files (ast and YAML need no service code; the pipeline venv has PyYAML). */
const FILES_VENV = "pipeline";

interface SettingsReads {
    names: Record<string, string[]>;
    required: string[];
}
interface FileReads {
    reads: string[];
    required: string[];
    matched: string[];
}
interface PythonReads {
    settings: Record<string, SettingsReads>;
    files: Record<string, FileReads>;
}

/** Runs app/tools/env_reads.py in `venv` for these settings classes and file globs. */
function introspect(venv: string, settings: string[], files: string[]): PythonReads {
    const python = path.join(VENVS, venv, "bin", "python");
    if (!fs.existsSync(python)) {
        throw new Error(
            `the env contract test needs the ${venv} venv (${python} is missing): run \`${VENVS_COMMAND}\` ` +
                `(scripts/test.sh does before jest; VENVS_DIR moves the venvs)`,
        );
    }
    const args = [
        "tools/env_reads.py",
        ...settings.flatMap((s) => ["--settings", s]),
        ...files.flatMap((f) => ["--files", f]),
    ];
    try {
        const out = execFileSync(python, args, {
            cwd: path.join(ROOT, "app"),
            env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
            encoding: "utf8",
            stdio: ["ignore", "pipe", "pipe"],
        });
        return JSON.parse(out) as PythonReads;
    } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`app/tools/env_reads.py in the ${venv} venv failed: ${err.stderr || err.message}`);
    }
}

/** Everything every ENV_READERS entry names, introspected once: settings per venv, files in FILES_VENV. */
function introspectAll(): PythonReads {
    const readers = Object.values(ENV_READERS);
    const byVenv = new Map<string, Set<string>>();
    for (const s of readers.flatMap((r) => r.settings)) {
        byVenv.set(s.venv, (byVenv.get(s.venv) ?? new Set()).add(s.settings));
    }
    const files = [...new Set(readers.flatMap((r) => r.files))];
    const out: PythonReads = { settings: {}, files: {} };
    for (const [venv, classes] of byVenv) Object.assign(out.settings, introspect(venv, [...classes], []).settings);
    Object.assign(out.files, introspect(FILES_VENV, [], files).files);
    return out;
}

/** A container of the run, with every env name it gets (`env` and the keys of ConfigMaps it takes with envFrom). */
interface RunContainer {
    key: string;
    env: Map<string, string | undefined>;
    /** `$NAME` references in its command line. */
    command: string;
    /** envFrom Secrets: their keys are the user's (object store credentials), not the program's. */
    secretRefs: string[];
}

const WORKLOAD_TYPES = [
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
];

function containersOf(run: StackRun): RunContainer[] {
    const configMaps = run
        .ofType("kubernetes:core/v1:ConfigMap")
        .map((r) => reveal(r.inputs))
        .map((cm) => ({ key: `${cm.metadata?.namespace}/${cm.metadata?.name}`, data: cm.data ?? {} }));
    return WORKLOAD_TYPES.flatMap((type) => run.ofType(type)).flatMap((r) => {
        const w = reveal(r.inputs);
        const template = w.spec?.jobTemplate?.spec?.template ?? w.spec?.template;
        const app = template.metadata?.labels?.["app.kubernetes.io/name"];
        const ns = w.metadata?.namespace;
        const spec = template.spec;
        return [...(spec.initContainers ?? []), ...spec.containers].map((c: any): RunContainer => {
            const env = new Map<string, string | undefined>(
                (c.env ?? []).map((e: any) => [e.name, typeof e.value === "string" ? e.value : undefined]),
            );
            const secretRefs: string[] = [];
            for (const from of c.envFrom ?? []) {
                if (from.secretRef) secretRefs.push(from.secretRef.name);
                if (!from.configMapRef) continue;
                const cm = configMaps.find((m) => m.key === `${ns}/${from.configMapRef.name}`);
                if (!cm)
                    throw new Error(
                        `${app}/${c.name} takes env from ConfigMap ${from.configMapRef.name}, not in the run`,
                    );
                for (const [k, v] of Object.entries(cm.data)) env.set(k, typeof v === "string" ? v : undefined);
            }
            return {
                key: `${app}/${c.name}`,
                env,
                command: [...(c.command ?? []), ...(c.args ?? [])].join(" "),
                secretRefs,
            };
        });
    });
}

const applies = (s: SettingsReader, c: RunContainer) => !s.when || c.env.get(s.when.env) === s.when.equals;
const describeReaders = (r: EnvReaders) =>
    [
        ...r.settings.map((s) => `${s.settings} (${s.venv})`),
        ...r.files.map((f) => `app/${f}`),
        ...r.thirdParty.map((t) => ENV_THIRD_PARTY[t].reader),
    ].join(", ") || "nobody";

function thirdPartyReads(t: ThirdParty, name: string, c: RunContainer): boolean {
    const party = ENV_THIRD_PARTY[t] as { prefix?: string; names: readonly string[] };
    if (t === "ownCommand") return party.names.includes(name) && c.command.includes(`$${name}`);
    return party.names.includes(name) || (party.prefix !== undefined && name.startsWith(party.prefix));
}

/** Every breach of the env contract in one stack's run, one line each, naming the container, the name and the reader. */
function envContractProblems(stack: StackName, run: StackRun, py: PythonReads): string[] {
    const problems: string[] = [];
    for (const c of containersOf(run)) {
        const readers = ENV_READERS[c.key];
        if (!readers) {
            problems.push(`${stack}: container ${c.key} has no ENV_READERS entry in lib/contracts.ts`);
            continue;
        }
        const settings = readers.settings.map((s) => ({ s, reads: py.settings[s.settings] }));
        const files = readers.files.map((f) => ({ f, reads: py.files[f] }));
        for (const name of c.env.keys()) {
            const readBy =
                settings.some(({ reads }) => Object.values(reads.names).some((n) => n.includes(name))) ||
                files.some(({ reads }) => reads.reads.includes(name)) ||
                readers.thirdParty.some((t) => thirdPartyReads(t, name, c));
            if (!readBy) {
                problems.push(
                    `${stack}: container ${c.key} gets ${name}, which none of its readers reads (${describeReaders(readers)})`,
                );
            }
        }
        for (const { s, reads } of settings) {
            if (!applies(s, c)) continue;
            for (const name of reads.required.filter((n) => !c.env.has(n))) {
                problems.push(
                    `${stack}: container ${c.key} does not set ${name}, which ${s.settings} (${s.venv} venv) requires (no default)`,
                );
            }
        }
        for (const { f, reads } of files) {
            for (const name of reads.required.filter((n) => !c.env.has(n))) {
                problems.push(`${stack}: container ${c.key} does not set ${name}, which app/${f} substitutes`);
            }
        }
    }
    return problems;
}

describe("the env contract: what each container gets, its Python service reads", () => {
    let py: PythonReads;
    beforeAll(() => {
        py = introspectAll();
    });

    test("the introspection reads the real settings classes (a sample of their aliases)", () => {
        expect(py.settings["app.settings:ServiceSettings"].names.redis_host).toEqual([ENV.feastOnline.redisHost]);
        expect(py.settings["fx_pipeline.config:OandaSettings"].required).toEqual(
            [ENV.pipeline.oandaAccountId, ENV.pipeline.oandaApiToken].sort(),
        );
        expect(py.files["feast_repo/feature_store.yaml"].required).toContain(ENV.feastRegistry.password);
        expect(py.files["airflow/dags/*.py"].reads).toContain(ENV.instruments);
    });

    test.each(STACKS)(
        "%s stack: every env name a container gets is read by its service or a named third party, and every required setting is set",
        async (stack) => {
            const run = await runStack(stack);
            expect(envContractProblems(stack, run, py)).toEqual([]);
        },
    );

    test("docs/contracts.md names only env names of the contract or of a service's settings", () => {
        const docs = fs.readFileSync(path.join(ROOT, "docs", "contracts.md"), "utf8");
        const section = docs.split("## Environment variables")[1].split("\n## ")[0];
        const documented = new Set(
            section
                .split("\n")
                .filter((l) => l.startsWith("| `"))
                // The first cell's names; parentheses hold example values (`USD_SGD`).
                .map((l) => l.split("|")[1].replace(/\([^)]*\)/g, ""))
                .flatMap((cell) => (cell.match(/`([A-Z][A-Z0-9_]+)`/g) ?? []).map((m) => m.slice(1, -1))),
        );
        const known = new Set([
            ...strings(ENV),
            ...Object.values(py.settings).flatMap((s) => Object.values(s.names).flat()),
        ]);
        expect(documented.size).toBeGreaterThan(20);
        expect([...documented].filter((n) => !known.has(n))).toEqual([]);
    });

    test("every ENV_READERS entry is a container one of the stacks runs", async () => {
        const keys = new Set<string>();
        for (const stack of STACKS) for (const c of containersOf(await runStack(stack))) keys.add(c.key);
        expect(Object.keys(ENV_READERS).filter((k) => !keys.has(k))).toEqual([]);
    });

    test("a renamed alias or a renamed contract name breaks the contract (the check can fail)", async () => {
        const run = await runStack("gpu");
        // The Python side renames REDIS_HOST: fastapi's container now sets a name nobody reads.
        const renamed: PythonReads = JSON.parse(JSON.stringify(py));
        renamed.settings["app.settings:ServiceSettings"].names.redis_host = ["REDIS_HOSTNAME"];
        expect(envContractProblems("gpu", run, renamed)).toContain(
            "gpu: container fastapi/fastapi gets REDIS_HOST, which none of its readers reads " +
                "(app.settings:ServiceSettings (fastapi), app/fastapi_service/gunicorn.conf.py, " +
                "app/fastapi_service/app/*.py, prometheus_client (multiprocess mode), " +
                "Python and the libraries that cache under the home folder)",
        );
        // A required setting the container does not set.
        renamed.settings["fx_pipeline.config:OandaSettings"].required.push("OANDA_REGION");
        expect(envContractProblems("gpu", run, renamed)).toContain(
            "gpu: container airflow-worker/worker does not set OANDA_REGION, which fx_pipeline.config:OandaSettings (pipeline venv) requires (no default)",
        );
    });
});

// ---------------------------------------------------------------------------------------------------------------
// Files outside TypeScript that state a port
// ---------------------------------------------------------------------------------------------------------------

describe("files outside TypeScript state the contract's ports", () => {
    const yamlFile = (rel: string) => parse(fs.readFileSync(path.join(ROOT, rel), "utf8"));

    test("monitoring/metrics-catalogue.yaml: each target's port", () => {
        const targets = yamlFile("monitoring/metrics-catalogue.yaml").targets as Record<
            string,
            { declaredBy: { port: number } }
        >;
        const ports = Object.fromEntries(Object.entries(targets).map(([id, t]) => [id, t.declaredBy.port]));
        expect(ports).toEqual({
            fastapi: PORTS.fastapi,
            fingpt: PORTS.fingpt,
            mlflow: PORTS.mlflow,
            redis: PORTS.redisExporter,
            postgres: PORTS.postgresMetrics,
            airflow: PORTS.statsdMetrics,
            "kube-state-metrics": PORTS.kubeStateMetrics,
            kubelet: PORTS.kubelet,
            prometheus: PORTS.prometheus,
        });
    });

    test("charts-values: the StatsD exporter's ports and the Redis exporter's", () => {
        const statsd = yamlFile("charts-values/prometheus-statsd-exporter.yaml");
        expect([statsd.statsd.udpPort, statsd.service.port]).toEqual([PORTS.statsd, PORTS.statsdMetrics]);
        const redis = yamlFile("charts-values/redis.yaml");
        expect(redis.podAnnotations["prometheus.io/port"]).toBe(String(PORTS.redisExporter));
        expect([redis.metrics.service.servicePort, redis.metrics.service.containerPort]).toEqual([
            PORTS.redisExporter,
            PORTS.redisExporter,
        ]);
    });
});
