import { CHOICES, IntRange, RANGES, SUPPORTED_VERSIONS, VERSION_KEYS, VersionListName } from "./rules";

/**
 * Holds the prose of Pulumi.yaml (and so the README table generated from it) to config/rules.ts: run by
 * `node scripts/config-docs.mjs --check` and test/config.test.ts. No Pulumi import: the docs script loads it alone.
 */

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
