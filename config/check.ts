import { DECLARED } from "./declared";
import {
    CHOICES,
    Choice,
    ChoiceKey,
    Pattern,
    PATTERNS,
    RANGES,
    RangeKey,
    SUPPORTED_VERSIONS,
    VERSION_KEYS,
} from "./rules";

/** The stack's config as the engine holds it: what `validate` reads, and all it reads of Pulumi. */
export interface RawConfig {
    /** The project's config namespace (its name). */
    readonly project: string;
    readonly stack: string;
    /** Every value, by full key (`<namespace>:<key>`), as the string the engine holds (JSON for lists and numbers). */
    readonly values: Readonly<Record<string, string>>;
    /** The full keys set as secrets (`pulumi config set --secret`). */
    readonly secrets: readonly string[];
}

/** What a problem breaks, for tests and tools to tell problems apart without reading their words. */
export type Rule =
    | "required"
    | "type"
    | "range"
    | "choice"
    | "pattern"
    | "release"
    | "floor"
    | "unknown-key"
    | "no-effect"
    | "secret-needed"
    | "invalid";

/** One bad key: its value as shown to the user (a secret's never), the rule it breaks, and the line the user reads. */
export interface Problem {
    readonly key: string;
    readonly value: unknown;
    readonly rule: Rule;
    readonly message: string;
}

/**
 * Reads one section's keys from a RawConfig and collects every problem, each naming the key, the bad value and what
 * is allowed; a bad key reads as `undefined`. Every value read is kept in `seen`, where the "no effect unless" and
 * secret tables of config/rules.ts look for their conditions.
 */
export class Check {
    readonly problems: Problem[] = [];
    readonly warnings: string[] = [];
    readonly seen: Record<string, unknown> = {};
    constructor(readonly raw: RawConfig) {}

    fullKey(key: string): string {
        return `${this.raw.project}:${key}`;
    }

    /** The raw string of a key, undefined when unset. */
    get(key: string): string | undefined {
        return this.raw.values[this.fullKey(key)];
    }

    fail(key: string, value: unknown, allowed: string, rule: Rule = "invalid"): void {
        const message = `Configuration '${this.fullKey(key)}' value ${JSON.stringify(value)} is invalid: ${allowed}.`;
        this.problems.push({ key, value, rule, message });
    }

    /** Whether `key` already has a problem (one problem per key where several rules would name it). */
    failed(key: string): boolean {
        return this.problems.some((p) => p.key === key);
    }

    private keep<T>(key: string, value: T | undefined): T | undefined {
        if (value !== undefined) this.seen[key] = value;
        return value;
    }

    /** The raw string, or a problem when a declared key has no value (the CLI merges defaults, so it always has). */
    private require(key: string): string | undefined {
        const value = this.get(key);
        if (value === undefined) {
            this.problems.push({
                key,
                value: undefined,
                rule: "required",
                message: `Missing required configuration variable '${this.fullKey(key)}': pulumi config set ${key} <value> --stack ${this.raw.stack}`,
            });
        }
        return value;
    }

    /** A string, held to its format in config/rules.ts PATTERNS (or `pattern` given here). */
    str(key: string, pattern: Pattern | undefined = PATTERNS[key]): string | undefined {
        const value = this.require(key);
        if (value === undefined) return undefined;
        if (pattern && !pattern.pattern.test(value)) {
            this.fail(key, value, pattern.hint, "pattern");
            return undefined;
        }
        return this.keep(key, value);
    }

    /** One of the words config/rules.ts CHOICES allows for `key`. */
    oneOf<K extends ChoiceKey>(key: K): Choice<K> | undefined {
        const value = this.require(key);
        if (value === undefined) return undefined;
        const allowed: readonly string[] = CHOICES[key];
        if (!allowed.includes(value)) {
            this.fail(key, value, `must be one of ${allowed.join(", ")}`, "choice");
            return undefined;
        }
        return this.keep(key, value as Choice<K>);
    }

    /** A whole number in the range config/rules.ts RANGES gives `key`. */
    int(key: RangeKey): number | undefined {
        const value = this.require(key);
        if (value === undefined) return undefined;
        const { min, max } = RANGES[key];
        const n = value.trim() === "" ? NaN : Number(value);
        if (Number.isNaN(n)) {
            this.fail(key, value, `must be a number, a whole number from ${min} to ${max}`, "type");
            return undefined;
        }
        if (!Number.isInteger(n) || n < min || n > max) {
            this.fail(key, n, `must be a whole number from ${min} to ${max}`, "range");
            return undefined;
        }
        return this.keep(key, n);
    }

    /** The cross-key floor RANGES gives `key` (`atLeast`): its value must be at least the floor key's. */
    atLeastFloor(key: "fastapiMaxReplicas" | "airflowWorkerMaxReplicas", value?: number, floor?: number, why = "") {
        const floorKey = RANGES[key].atLeast;
        if (value !== undefined && floor !== undefined && value < floor) {
            this.fail(key, value, `must be at least ${floorKey} (${floor})${why}`, "floor");
        }
    }

    bool(key: string): boolean | undefined {
        const value = this.require(key);
        if (value === undefined) return undefined;
        if (value !== "true" && value !== "false") {
            this.fail(key, value, "must be a boolean, true or false", "type");
            return undefined;
        }
        return this.keep(key, value === "true");
    }

    strings(key: string): string[] | undefined {
        const value = this.require(key);
        if (value === undefined) return undefined;
        let v: unknown = value;
        try {
            v = JSON.parse(value);
        } catch {
            // not JSON: reported below as what it is
        }
        if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
            this.fail(key, v, "must be a list of strings", "type");
            return undefined;
        }
        return this.keep(key, v as string[]);
    }

    /** A secret's value, or undefined when unset; only ever handed on wrapped (config/validate.ts). */
    secret(key: string): string | undefined {
        const value = this.get(key);
        return value === undefined || value === "" ? undefined : value;
    }

    /** True when the key holds a non-empty value. */
    has(key: string): boolean {
        const raw = this.get(key);
        return raw !== undefined && raw !== "";
    }

    /**
     * True when the key holds something other than its Pulumi.yaml default. The CLI merges defaults into the config
     * the program sees, so a value equal to the default is indistinguishable from an unset key (and as harmless).
     */
    changed(key: string): boolean {
        const raw = this.get(key);
        if (raw === undefined) return false;
        const def = DECLARED[key]?.default;
        if (def === undefined) return raw !== "";
        if (typeof def === "string") return raw !== def;
        try {
            return JSON.stringify(JSON.parse(raw)) !== JSON.stringify(def);
        } catch {
            return true;
        }
    }

    /** A key set away from its default where it does nothing is a problem: the user meant something else. */
    noEffect(key: string, why: string): void {
        // An invalid value is already reported; one problem per key.
        if (!this.changed(key) || this.failed(key)) return;
        let value: unknown = this.get(key);
        try {
            value = JSON.parse(value as string);
        } catch {
            // a plain string value
        }
        this.fail(key, value, `has no effect ${why}; remove it (pulumi config rm ${key})`, "no-effect");
    }

    /** A secret set where the stack does not use it: a warning (it may be set ahead of use), its value never shown. */
    unusedSecret(key: string, why: string): void {
        const line = `Configuration '${this.fullKey(key)}' is set but has no effect ${why}.`;
        if (this.has(key) && !this.warnings.includes(line)) this.warnings.push(line);
    }

    /** A secret the stack needs, named with the command that sets it. */
    needSecret(key: string, why: string): void {
        if (!this.has(key) && !this.failed(key)) {
            this.fail(
                key,
                "<unset>",
                `required ${why}: pulumi config set --secret ${key} <value> --stack ${this.raw.stack}`,
                "secret-needed",
            );
        }
    }

    /** One of the releases config/versions.yaml lists for the version key. */
    release(key: keyof typeof VERSION_KEYS, what: string): string | undefined {
        const value = this.require(key);
        if (value === undefined) return undefined;
        const allowed = SUPPORTED_VERSIONS[VERSION_KEYS[key]].releases;
        if (!allowed.includes(value)) {
            this.fail(key, value, `must be ${what} listed in config/versions.yaml: ${allowed.join(", ")}`, "release");
            return undefined;
        }
        return this.keep(key, value);
    }
}
