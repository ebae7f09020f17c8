/**
 * Runs the whole Pulumi program for a named stack under Pulumi mocks and returns every registered resource.
 *
 * Config comes from Pulumi.yaml defaults + Pulumi.<stack>.yaml + per-test overrides; every secret key gets a
 * sentinel value, and so does every generated secret (random passwords/bytes), so a test can search the recorded
 * inputs and stack outputs for sentinels outside Pulumi secrets. Each run gets its own module registry.
 *
 * Under jest, each stack and config variant runs once per test run: runStack(stack) with no options returns the default
 * run test/record-runs.ts recorded before the suites started, and the first successful run of a config variant is
 * recorded beside it for the suites that ask for the same variant later (each call parses its own copy). Runs with a
 * `program` or `live: true`, and runs that fail (bad-config cases), run the program every time.
 * What the harness needs from inside @pulumi/pulumi, beyond its public mocks API, is in tools/pulumi-internals.ts.
 */
import * as fs from "fs";
import * as path from "path";
import * as crypto from "crypto";
import { isDeepStrictEqual } from "util";
import { parse } from "yaml";
import type { RawConfig } from "../config/check";
import { captureRegistrations, RegistrationMeta, resetRuntimeStore, waitForRPCs } from "./pulumi-internals";

// Each run adds process listeners inside the Pulumi runtime; a test file runs many stacks.
process.setMaxListeners(100);

import { PROJECT, ROOT, STACKS, StackName } from "./stacks";

export { PROJECT, ROOT, STACKS };
export type { StackName };

/** The signature Pulumi uses to mark a serialized value as secret. */
export const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface RecordedResource {
    type: string;
    name: string;
    urn: string;
    /** URN of the parent, if any. */
    parent?: string;
    custom: boolean;
    /** Resource inputs as the provider would receive them; secret values stay wrapped in the secret signature. */
    inputs: any;
    /** URNs this resource depends on (explicit dependsOn and input dependencies). */
    dependencies: string[];
    /** Resource options the engine sees: `protect` and `retainOnDelete` (data that must survive a destroy). */
    options: ResourceOptionsSeen;
    /** The provider reference a custom resource registered with (`<provider urn>::<id>`); "" means the default one. */
    provider: string;
    /** The providers map of a component (remote or local), by package. */
    providers: Record<string, string>;
    /** The state the mock returned (outputs). */
    state: any;
}

export interface ResourceOptionsSeen {
    protect: boolean;
    retainOnDelete: boolean;
}

export interface StackOutput {
    value: unknown;
    secret: boolean;
}

/** The plain data of a run (what JSON carries; test/record-runs.ts records the default runs as JSON). */
export type StackRunData = Pick<StackRun, "stack" | "resources" | "outputs" | "config" | "warnings" | "sentinels">;

export interface StackRun {
    stack: StackName;
    resources: RecordedResource[];
    outputs: Record<string, StackOutput>;
    config: Record<string, unknown>;
    /** Warnings the program logged (pulumi.log.warn), in order. */
    warnings: string[];
    /** Every sentinel value handed out (configured secrets and generated secrets). */
    sentinels: string[];
    /** Finds resources by type token, optionally by name (exact string or pattern). */
    ofType(type: string, name?: string | RegExp): RecordedResource[];
    /** Exactly one resource of this type and name; throws with the candidates if not found. */
    one(type: string, name: string | RegExp): RecordedResource;
    /** Children of a resource (by URN), recursively when `deep`. */
    childrenOf(parent: RecordedResource, deep?: boolean): RecordedResource[];
    /** True when `later` depends on `earlier` or on a resource under it, directly or through a chain. */
    dependsOn(later: RecordedResource, earlier: RecordedResource): boolean;
}

interface ProjectConfigDecl {
    type?: string;
    default?: unknown;
    /** The value of a key in another namespace (pulumi:...), which the CLI merges into every stack's config. */
    value?: unknown;
    secret?: boolean;
    description?: string;
}

/** Pulumi.yaml's config declarations. */
export function projectConfig(): Record<string, ProjectConfigDecl> {
    const doc = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
    return doc.config as Record<string, ProjectConfigDecl>;
}

/** A stack file's config: the project's keys without the project prefix, other namespaces' keys (pulumi:...) whole. */
export function stackConfig(stack: StackName): Record<string, unknown> {
    const doc = parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) ?? {};
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(doc.config ?? {})) out[k.replace(`${PROJECT}:`, "")] = v;
    return out;
}

/** The secret keys the program reads (config/secrets.yaml; Pulumi.yaml does not declare them). */
export function secretKeys(): string[] {
    return Object.keys(parse(fs.readFileSync(path.join(ROOT, "config/secrets.yaml"), "utf8")));
}

export function sentinelFor(key: string): string {
    return `SENTINEL-${key}-${crypto.createHash("sha256").update(key).digest("hex").slice(0, 8)}`;
}

type ConfigOptions = Pick<RunOptions, "config" | "unsetSecrets" | "secretConfig">;

/** A stack's config values by key, as YAML gives them (the project's keys without the prefix). */
function configValues(stack: StackName, options: ConfigOptions): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [k, d] of Object.entries(projectConfig()))
        if ((d.default ?? d.value) !== undefined) values[k] = d.default ?? d.value;
    Object.assign(values, stackConfig(stack));
    for (const k of secretKeys()) if (!options.unsetSecrets?.includes(k)) values[k] = sentinelFor(k);
    for (const [k, v] of Object.entries(options.config ?? {})) {
        if (v === undefined) delete values[k];
        else values[k] = v;
    }
    return values;
}

/**
 * A stack's config as the engine would hold it (config/check.ts RawConfig): Pulumi.yaml defaults, Pulumi.<stack>.yaml,
 * a sentinel per secret key, then `options.config`. What the program reads under mocks, and what a test hands to
 * config/validate.ts directly.
 */
export function rawConfig(stack: StackName, options: ConfigOptions = {}): RawConfig {
    const values = configValues(stack, options);
    const secrets = secretKeys();
    const fullKey = (k: string) => (k.includes(":") ? k : `${PROJECT}:${k}`);
    const cfg: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) cfg[fullKey(k)] = typeof v === "string" ? v : JSON.stringify(v);
    const secretValues = [...secrets, ...(options.secretConfig ?? [])].filter((k) => values[k] !== undefined);
    return { project: PROJECT, stack, values: cfg, secrets: secretValues.map(fullKey) };
}

/** Per-type outputs a real provider would compute; everything else echoes the inputs. */
function mockState(type: string, name: string, inputs: any): Record<string, any> {
    switch (type) {
        case "random:index/randomPassword:RandomPassword":
        case "random:index/randomString:RandomString":
            return { ...inputs, result: sentinelFor(`random-${name}`) };
        case "random:index/randomBytes:RandomBytes": {
            // base64 containing '+' and '/' so the URL-safe conversion is exercised.
            const b64 = Buffer.from(`${sentinelFor(`random-${name}`)}-padding-to-32`.slice(0, 32)).toString("base64");
            return { ...inputs, base64: `${b64.slice(0, 10)}+/${b64.slice(12)}`, hex: sentinelFor(`random-${name}`) };
        }
        case "docker:index/image:Image": {
            const digest = crypto.createHash("sha256").update(JSON.stringify(inputs)).digest("hex");
            // Strip only the tag: a registry host may carry a port (localhost:5001/fx-base:tag).
            const repo = String(inputs.imageName ?? name).replace(/:[^:/]*$/, "");
            return { ...inputs, repoDigest: `${repo}@sha256:${digest}`, baseImageName: inputs.imageName };
        }
        case "kubernetes:helm.sh/v3:Release":
            return {
                ...inputs,
                status: {
                    name: inputs.name ?? name,
                    namespace: inputs.namespace ?? "default",
                    status: "deployed",
                    chart: inputs.chart,
                    version: inputs.version,
                },
            };
        default:
            if (type.startsWith("kubernetes:")) {
                const metadata = { ...(inputs.metadata ?? {}) };
                metadata.name = metadata.name ?? `${name}-mock`;
                return { ...inputs, metadata };
            }
            return { ...inputs };
    }
}

function wrapSecret(value: unknown) {
    return { [SECRET_SIG_KEY]: SECRET_SIG, value };
}

export interface RunOptions {
    /** Config overrides by key (without project prefix); `undefined` removes the key. */
    config?: Record<string, unknown>;
    /** Secret keys to leave unset (by default every secret key of config/secrets.yaml gets a sentinel). */
    unsetSecrets?: string[];
    /** Further config keys to pass as secrets (as `pulumi config set --secret` would). */
    secretConfig?: string[];
    /**
     * Runs this function instead of index.ts (see runProgram). It runs inside the isolated module registry, so it must
     * `require()` the components it uses there rather than import them at the top of the test file.
     */
    program?: () => Record<string, unknown> | void;
    /**
     * Runs the program now even when this stack and config variant was recorded earlier in the jest run (for a test that
     * changes files the program reads, or that checks two runs agree).
     */
    live?: boolean;
}

/**
 * Runs index.ts for `stack` under mocks. If the program throws, the promise rejects with its error, which carries
 * `registered`: the resources declared before the throw (none, for config errors).
 */
export async function runStack(stack: StackName, options: RunOptions = {}): Promise<StackRun> {
    const dir = process.env[RECORDED_RUNS_ENV];
    if (!dir || options.program || options.live) return withHelpers(await liveRun(stack, options));
    const file = recordedRunFile(dir, stack, options);
    const recorded = readRecorded(file);
    if (recorded) return withHelpers(recorded);
    if (file === recordedRunFile(dir, stack)) {
        // The program failed when test/record-runs.ts ran it: fail as the live run did.
        if (fs.existsSync(`${file}.error`)) throw new Error(fs.readFileSync(`${file}.error`, "utf8"));
        throw new Error(`${RECORDED_RUNS_ENV}=${dir} has no recorded run of ${stack} (${file})`);
    }
    // A config variant no suite has run yet in this test run: run it now and share it (failures are not shared).
    const data = await liveRun(stack, options);
    const text = JSON.stringify(data);
    if (isDeepStrictEqual(JSON.parse(text), data)) {
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, text);
        fs.renameSync(tmp, file);
    }
    return withHelpers(data);
}

/** The environment variable naming the folder of the runs recorded for this test run (test/record-runs.ts). */
export const RECORDED_RUNS_ENV = "FX_RECORDED_RUNS";

/**
 * Where the run of `stack` with these options is recorded: <stack>.json for the default run, a file named by a hash
 * of the config overrides and secret options for a variant.
 */
export function recordedRunFile(dir: string, stack: StackName, options: RunOptions = {}): string {
    const config = Object.entries(options.config ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, v === undefined ? { unset: true } : v]);
    const variant = { config, unsetSecrets: options.unsetSecrets ?? [], secretConfig: options.secretConfig ?? [] };
    if (config.length + variant.unsetSecrets.length + variant.secretConfig.length === 0) {
        return path.join(dir, `${stack}.json`);
    }
    const hash = crypto.createHash("sha256").update(JSON.stringify(variant)).digest("hex").slice(0, 16);
    return path.join(dir, `${stack}-${hash}.json`);
}

const recordedText = new Map<string, string>();

/** A recorded run, parsed afresh on every call (a test that changes its copy cannot affect another). */
function readRecorded(file: string): StackRunData | undefined {
    let text = recordedText.get(file);
    if (text === undefined) {
        if (!fs.existsSync(file)) return undefined;
        text = fs.readFileSync(file, "utf8");
        recordedText.set(file, text);
    }
    return JSON.parse(text) as StackRunData;
}

/** Runs the program now, under mocks, and returns the run's plain data. */
export async function liveRun(stack: StackName, options: RunOptions = {}): Promise<StackRunData> {
    const values = configValues(stack, options);
    const raw = rawConfig(stack, options);
    const sentinels = secretKeys()
        .filter((k) => !options.unsetSecrets?.includes(k))
        .map(sentinelFor);

    const resources: RecordedResource[] = [];
    const outputs: Record<string, StackOutput> = {};
    const warnings: string[] = [];

    await jestIsolated(async () => {
        resetRuntimeStore();
        const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
        const pending = new Map<string, RegistrationMeta[]>();
        captureRegistrations((type, name, meta) => {
            const key = `${type}::${name}`;
            pending.set(key, [...(pending.get(key) ?? []), meta]);
        });

        await pulumi.runtime.setMocks(
            {
                newResource(args) {
                    const key = `${args.type}::${args.name}`;
                    const meta: RegistrationMeta = pending.get(key)?.shift() ?? {
                        dependencies: [],
                        secretOutputs: [],
                        options: { protect: false, retainOnDelete: false },
                        provider: "",
                        providers: {},
                    };
                    const state = mockState(args.type, args.name, args.inputs);
                    for (const field of meta.secretOutputs) {
                        if (field in state) state[field] = wrapSecret(state[field]);
                    }
                    for (const v of Object.values(state)) collectSentinels(v, sentinels);
                    const urn = newUrn(meta.parent, args.type, args.name, stack);
                    resources.push({
                        type: args.type,
                        name: args.name,
                        urn,
                        // No key for no parent, as in the recorded runs (JSON has no undefined).
                        ...(meta.parent ? { parent: meta.parent } : {}),
                        custom: args.custom !== false,
                        inputs: args.inputs,
                        dependencies: meta.dependencies,
                        options: meta.options,
                        provider: meta.provider,
                        providers: meta.providers,
                        state,
                    });
                    return { id: args.custom === false ? undefined : `${args.name}-id`, state };
                },
                call(args) {
                    return args.inputs;
                },
            },
            PROJECT,
            stack,
            false,
        );
        pulumi.runtime.setAllConfig({ ...raw.values }, [...raw.secrets]);

        // With no engine (mocks), pulumi.log.warn goes to console.warn: record the program's warnings instead.
        const consoleWarn = console.warn;
        console.warn = (...args: unknown[]) => {
            const text = args.map(String).join(" ");
            if (text.startsWith("warning: [runtime] ")) warnings.push(text.slice("warning: [runtime] ".length));
            else consoleWarn(...args);
        };
        let program: Record<string, unknown>;
        try {
            program = options.program ? (options.program() ?? {}) : require("../index");
        } catch (e) {
            await waitForRPCs();
            throw Object.assign(e as Error, { registered: [...resources], warnings });
        } finally {
            console.warn = consoleWarn;
        }
        for (const [k, v] of Object.entries(program)) {
            if (pulumi.Output.isInstance(v)) {
                const secret = await (v as any).isSecret;
                outputs[k] = { value: await new Promise((resolve) => (v as any).apply(resolve)), secret };
            } else {
                outputs[k] = { value: v, secret: false };
            }
        }
        await waitForRPCs();
    });

    return { stack, resources, outputs, config: values, warnings, sentinels };
}

/** A run's plain data with the lookup helpers. */
export function withHelpers(data: StackRunData): StackRun {
    const { resources } = data;
    const byUrn = new Map(resources.map((r) => [r.urn, r]));
    const childrenOf = (parent: RecordedResource, deep = false): RecordedResource[] => {
        const direct = resources.filter((r) => r.parent === parent.urn);
        return deep ? direct.flatMap((c) => [c, ...childrenOf(c, true)]) : direct;
    };
    const dependsOn = (later: RecordedResource, earlier: RecordedResource): boolean => {
        const targets = new Set([earlier.urn, ...childrenOf(earlier, true).map((r) => r.urn)]);
        const seen = new Set<string>();
        const walk = (r: RecordedResource): boolean => {
            for (const d of r.dependencies) {
                if (targets.has(d)) return true;
                if (seen.has(d)) continue;
                seen.add(d);
                const dep = byUrn.get(d);
                if (dep && walk(dep)) return true;
                // A dependency on a component covers its children too.
                if (dep && childrenOf(dep, true).some((c) => targets.has(c.urn))) return true;
            }
            return r.parent ? (byUrn.get(r.parent) ? walk(byUrn.get(r.parent)!) : false) : false;
        };
        return walk(later);
    };
    const matches = (r: RecordedResource, type: string, name?: string | RegExp) =>
        r.type === type && (name === undefined || (typeof name === "string" ? r.name === name : name.test(r.name)));
    return {
        ...data,
        ofType: (type, name) => resources.filter((r) => matches(r, type, name)),
        one(type, name) {
            const found = resources.filter((r) => matches(r, type, name));
            if (found.length !== 1) {
                const names = resources.filter((r) => r.type === type).map((r) => r.name);
                throw new Error(
                    `expected one ${type} named ${name}, found ${found.length}; ${type} names: ${names.join(", ")}`,
                );
            }
            return found[0];
        },
        childrenOf,
        dependsOn,
    };
}

/**
 * Runs any function under the same mocks and config as runStack (default: the dev stack's config) and returns what it
 * registered; what the function returns becomes the run's outputs. For testing a component alone.
 */
export async function runProgram(
    program: () => Record<string, unknown> | void,
    options: RunOptions & { stack?: StackName } = {},
): Promise<StackRun> {
    return runStack(options.stack ?? "dev", { ...options, program });
}

function newUrn(parent: string | undefined, type: string, name: string, stack: string): string {
    let qualified = type;
    if (parent) {
        const parentType = parent.split("::")[2].split("$").pop();
        // The same URN the mock monitor hands the program (only the parent's own type qualifies the child's), so
        // dependency URNs recorded from requests match the URNs of the recorded resources at any nesting depth.
        if (parentType !== "pulumi:pulumi:Stack") qualified = `${parentType}$${type}`;
    }
    return `urn:pulumi:${stack}::${PROJECT}::${qualified}::${name}`;
}

function collectSentinels(v: unknown, into: string[]): void {
    if (typeof v === "string" && v.includes("SENTINEL-") && !into.includes(v)) into.push(v);
    else if (v && typeof v === "object") for (const x of Object.values(v)) collectSentinels(x, into);
}

async function jestIsolated(fn: () => Promise<void>): Promise<void> {
    // `jest` is injected into every module jest loads; outside jest (npm run render) one run per process is fine.
    if (typeof jest !== "undefined") await jest.isolateModulesAsync(fn);
    else await fn();
}

/** Paths (a.b[0].c) of every string in `value` that contains one of `needles` and is not inside a Pulumi secret. */
export function findPlaintext(value: unknown, needles: readonly string[], at = "$"): string[] {
    if (typeof value === "string") {
        return needles.some((n) => value.includes(n)) ? [at] : [];
    }
    if (Array.isArray(value)) return value.flatMap((v, i) => findPlaintext(v, needles, `${at}[${i}]`));
    if (value && typeof value === "object") {
        if ((value as any)[SECRET_SIG_KEY] === SECRET_SIG) return [];
        return Object.entries(value).flatMap(([k, v]) => findPlaintext(v, needles, `${at}.${k}`));
    }
    return [];
}

/** Unwraps Pulumi secret wrappers, for asserting on values that are rightly secret. */
export function reveal<T = any>(value: any): T {
    if (Array.isArray(value)) return value.map(reveal) as any;
    if (value && typeof value === "object") {
        if (value[SECRET_SIG_KEY] === SECRET_SIG) return reveal(value.value);
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)])) as any;
    }
    return value;
}
