import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

/**
 * Every range and allowed set of stack config, stated once: config/index.ts validates with these, the components
 * take the typed result and never check it again, and `descriptionProblems` holds the prose of Pulumi.yaml (and so
 * the README table generated from it) to them (run by `node scripts/config-docs.mjs --check` and test/config.test.ts).
 * No Pulumi import: the docs script loads this module on its own.
 */

const CONFIG_DIR = __dirname;

/** A whole-number key: `min` to `max`, and at least the key `atLeast` names where there is one. */
export interface IntRange {
    readonly min: number;
    readonly max: number;
    readonly atLeast?: string;
}

/**
 * The integer keys. Each bound says why it is there: above it the stack is no longer the pipeline this project
 * sizes (its Postgres connections, its node count), or the pod could not be scheduled at all.
 */
export const RANGES = {
    fastapiReplicas: { min: 1, max: 20 },
    fastapiMaxReplicas: { min: 1, max: 50, atLeast: "fastapiReplicas" },
    fastapiWorkers: { min: 1, max: 8 },
    airflowWorkerReplicas: { min: 1, max: 20 },
    airflowWebserverReplicas: { min: 1, max: 5 },
    airflowApiWorkers: { min: 1, max: 8 },
    airflowWorkerMaxReplicas: { min: 1, max: 20, atLeast: "airflowWorkerReplicas" },
    airflowWorkerQueueTarget: { min: 1, max: 1000 },
    // 1 primary + up to 4 replicas; CloudNativePG would take more, the pipeline's load never needs them.
    postgresInstances: { min: 1, max: 5 },
    // A pod runs on one node, and no GPU node offers more than 8: a larger limit could never be scheduled.
    gpuCount: { min: 1, max: 8 },
} as const satisfies Readonly<Record<string, IntRange>>;
export type RangeKey = keyof typeof RANGES;

/** The keys that take one of a fixed set of words. */
export const CHOICES = {
    imagePlatform: ["linux/amd64", "linux/arm64"],
    fingptMode: ["model", "lexicon"],
    tlsIssuer: ["selfsigned", "acme"],
    dataSource: ["oanda", "sample"],
    oandaEnvironment: ["practice", "live"],
} as const satisfies Readonly<Record<string, readonly string[]>>;
export type ChoiceKey = keyof typeof CHOICES;
export type Choice<K extends ChoiceKey> = (typeof CHOICES)[K][number];

export interface VersionList {
    readonly releases: readonly string[];
    /** The major release the reference app (appContext: app) is written for. */
    readonly referenceAppMajor?: number;
    /** Postgres only: the exact image of each major; its keys are the releases. */
    readonly images?: Readonly<Record<string, string>>;
}
export type VersionListName = "postgres" | "redis" | "airflow" | "mlflow";

/**
 * An Airflow release the Airflow component renders: 2.x (webserver) or 3.x (api-server, dag-processor). Every release
 * config/versions.yaml lists is one (checked as the file loads), so the component needs no check of its own.
 */
export type AirflowRelease = `2.${string}` | `3.${string}`;
export function isAirflowRelease(v: string): v is AirflowRelease {
    return /^[23]\.[0-9]+\.[0-9]+$/.test(v);
}

/**
 * The lists of a versions file (`doc`, parsed from `file`); a list the components could not deploy is an error of the
 * file, named here.
 */
export function checkVersions(
    file: string,
    doc: Readonly<Record<VersionListName, VersionList>>,
): Readonly<Record<VersionListName, VersionList>> {
    const { images } = doc.postgres;
    if (!images || Object.keys(images).length === 0) {
        throw new Error(`${file}: postgres.images must map each supported major to its exact image`);
    }
    const badAirflow = doc.airflow.releases.filter((v) => !isAirflowRelease(v));
    if (badAirflow.length > 0) {
        throw new Error(
            `${file}: airflow.releases ${badAirflow.join(", ")}: the Airflow component renders 2.x and 3.x releases only`,
        );
    }
    return { ...doc, postgres: { ...doc.postgres, releases: Object.keys(images) } };
}

/** The one list of releases each version key accepts (config/versions.yaml). */
export const SUPPORTED_VERSIONS: Readonly<Record<VersionListName, VersionList>> = (() => {
    const file = path.join(CONFIG_DIR, "versions.yaml");
    return checkVersions(file, parse(fs.readFileSync(file, "utf8")));
})();

/** The version keys and the list of config/versions.yaml each is checked against. */
export const VERSION_KEYS = {
    postgresVersion: "postgres",
    redisVersion: "redis",
    airflowVersion: "airflow",
    mlflowVersion: "mlflow",
} as const satisfies Readonly<Record<string, VersionListName>>;

interface Declaration {
    readonly type?: string;
    readonly description?: string;
}

/** Numeric "A to B" phrases ("1 to 20", "14 to 18", "2.7.0 to 3.3.2") in a description. */
const RANGE_PHRASE = /\b(\d+(?:\.\d+)*) to (\d+(?:\.\d+)*)\b/g;

/**
 * Where a Pulumi.yaml description states a range or an allowed set that differs from what config enforces, one line
 * naming the key, what Pulumi.yaml says and what the code enforces. `decls` are the project's own keys of Pulumi.yaml.
 */
export function descriptionProblems(decls: Readonly<Record<string, Declaration>>): string[] {
    const problems: string[] = [];
    const say = (key: string, says: string, enforces: string) =>
        problems.push(
            `Pulumi.yaml ${key}: the description says ${says}, but config/rules.ts enforces ${enforces}; ` +
                "make the description state what the code enforces (or change the rule there)",
        );
    const ranges: Readonly<Record<string, IntRange>> = RANGES;
    const choices: Readonly<Record<string, readonly string[]>> = CHOICES;
    const versions: Readonly<Record<string, VersionListName>> = VERSION_KEYS;

    for (const key of [...Object.keys(ranges), ...Object.keys(choices), ...Object.keys(versions)]) {
        if (!(key in decls)) problems.push(`config/rules.ts has a rule for ${key}, which Pulumi.yaml does not declare`);
    }
    for (const [key, decl] of Object.entries(decls)) {
        const text = decl.description ?? "";
        const stated = [...text.matchAll(RANGE_PHRASE)].map((m) => ({ phrase: m[0], from: m[1], to: m[2] }));
        const range = ranges[key];
        if (range) {
            const want = `${range.min} to ${range.max}`;
            const enforced = `${want}${range.atLeast ? ` and at least ${range.atLeast}` : ""}`;
            if (decl.type !== "integer") say(key, `type ${decl.type}`, `a whole number, ${enforced}`);
            const wrong = stated.filter((s) => s.phrase !== want);
            if (wrong.length > 0) say(key, wrong.map((s) => `"${s.phrase}"`).join(" and "), enforced);
            else if (stated.length === 0) say(key, "no range", enforced);
            if (range.atLeast && !text.includes(`at least ${range.atLeast}`)) {
                say(key, `nothing of the floor ${range.atLeast}`, enforced);
            }
            continue;
        }
        if (decl.type === "integer") {
            problems.push(`Pulumi.yaml ${key}: an integer key without a range in config/rules.ts RANGES`);
        }
        const allowed = choices[key];
        if (allowed) {
            const missing = allowed.filter((v) => !new RegExp(`(^|[^\\w/-])${v}($|[^\\w/-])`).test(text));
            if (missing.length > 0) {
                say(key, `nothing of ${missing.join(", ")}`, `one of ${allowed.join(", ")}`);
            }
        }
        const list = versions[key];
        if (list) {
            const releases = SUPPORTED_VERSIONS[list].releases;
            const [first, last] = [releases[0], releases[releases.length - 1]];
            const enforced = `the releases config/versions.yaml lists for ${list}, ${first} to ${last}`;
            if (!text.includes("config/versions.yaml")) say(key, "nothing of config/versions.yaml", enforced);
            for (const s of stated) {
                if (s.from !== first || s.to !== last) say(key, `"${s.phrase}"`, enforced);
            }
            for (const m of text.matchAll(/\b(\d+(?:\.\d+)*) or later\b/g)) {
                if (m[1] !== first) say(key, `"${m[0]}"`, enforced);
            }
            // A series ("3.x", "7.4.x") the description names must have releases in the list.
            for (const m of text.matchAll(/\b(\d+(?:\.\d+)*)\.x\b/g)) {
                if (!releases.some((r) => r.startsWith(`${m[1]}.`))) say(key, `"${m[0]}"`, enforced);
            }
            continue;
        }
        if (!allowed && stated.length > 0) {
            say(key, stated.map((s) => `"${s.phrase}"`).join(" and "), "no range for this key");
        }
    }
    return problems;
}
