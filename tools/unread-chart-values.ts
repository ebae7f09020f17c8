/**
 * Which of the values we pass a chart does the chart read? Helm ignores a key no template reads, so a misspelled or
 * misplaced key silently does nothing; this finds them.
 *
 * A value (each leaf of our values: a scalar, a list, or an empty map) counts as read when
 * 1. the chart declares its path in values.yaml (the chart's own documentation of its interface), or
 * 2. values.schema.json declares it (`properties`, or `additionalProperties` given a schema: a map of typed entries), or
 * 3. a template reads that exact path, or passes a block above it through whole (`toYaml .Values.x`,
 *    `with .Values.x` + `toYaml .`, `range $k, $v := .Values.x` + `$v`, `include "t" .Values.x`, `tpl`, `merge`):
 *    then everything inside the block reaches the chart's output, where the object validation checks it.
 * Subcharts are checked under their key (alias or name) against their own files; `global` against every chart; a
 * subchart's `condition` key is read by Helm itself.
 *
 * The templates are scanned action by action (`{{ ... }}`), tracking what `.` and `$variables` stand for inside
 * `with`/`range` blocks, so `{{ with .Values.server }}{{ .port }}` reads `server.port`. It reads Go templates as
 * charts write them; an expression it cannot follow (a value bound through a helper's `dict`) counts its arguments
 * as passed whole, which errs on the side of "read".
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";

/** A value path, one segment per map key; `*` in a template path stands for any key (inside `range`). */
export type ValuePath = readonly string[];

export interface UnusedValue {
    /** Dotted path of the value in our values (keys with dots are quoted: `serverFiles."prometheus.yml"`). */
    path: string;
    /** Closest keys the chart does read at that level, for the message. */
    hint: string;
}

const extracted = new Map<string, string>();

/** Unpacks a chart archive once per process into a temp folder; returns the chart's folder. */
export function extractChart(archive: string): string {
    const hit = extracted.get(archive);
    if (hit) return hit;
    const key = crypto.createHash("sha256").update(fs.readFileSync(archive)).digest("hex").slice(0, 12);
    const dir = path.join(os.tmpdir(), `fx-chart-${key}`);
    if (!fs.existsSync(path.join(dir, ".done"))) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir, { recursive: true });
        execFileSync("tar", ["-xzf", archive, "-C", dir]);
        fs.writeFileSync(path.join(dir, ".done"), "");
    }
    const [top] = fs.readdirSync(dir).filter((f) => f !== ".done");
    const chartDir = path.join(dir, top);
    extracted.set(archive, chartDir);
    return chartDir;
}

/** One chart's interface: declared defaults, schema, template reads; its subcharts by values key. */
export interface ChartModel {
    name: string;
    defaults: Record<string, unknown>;
    schema?: Record<string, any>;
    /** Paths the templates read (exact). */
    reads: ValuePath[];
    /** Paths whose whole block the templates pass on. */
    wholes: ValuePath[];
    /** Keys Helm itself reads (subchart conditions, `tags`). */
    helmReads: ValuePath[];
    subcharts: Map<string, ChartModel>;
}

const modelCache = new Map<string, ChartModel>();

/** Reads a chart folder (and its subcharts, unpacked or as archives) into a ChartModel. */
export function chartModel(chartDir: string): ChartModel {
    const cached = modelCache.get(chartDir);
    if (cached) return cached;
    const chartYaml = parse(fs.readFileSync(path.join(chartDir, "Chart.yaml"), "utf8"));
    const valuesFile = path.join(chartDir, "values.yaml");
    const schemaFile = path.join(chartDir, "values.schema.json");
    const reads: ValuePath[] = [];
    const wholes: ValuePath[] = [];
    const templatesDir = path.join(chartDir, "templates");
    for (const file of walk(templatesDir)) {
        if (!/\.(ya?ml|tpl|txt|json)$/.test(file)) continue;
        const found = scanTemplate(fs.readFileSync(file, "utf8"));
        reads.push(...found.reads);
        wholes.push(...found.wholes);
    }
    const helmReads: ValuePath[] = [];
    const subcharts = new Map<string, ChartModel>();
    const subDir = path.join(chartDir, "charts");
    const deps: any[] = chartYaml.dependencies ?? [];
    if (fs.existsSync(subDir)) {
        for (const entry of fs.readdirSync(subDir)) {
            const full = path.join(subDir, entry);
            const dir = entry.endsWith(".tgz") ? extractChart(full) : full;
            if (!fs.existsSync(path.join(dir, "Chart.yaml"))) continue;
            const sub = chartModel(dir);
            const dep = deps.find((d) => d.name === sub.name);
            subcharts.set(dep?.alias ?? sub.name, sub);
        }
    }
    for (const d of deps) {
        for (const cond of String(d.condition ?? "")
            .split(",")
            .filter(Boolean)) {
            helmReads.push(cond.trim().split("."));
        }
    }
    if (deps.some((d) => d.tags)) helmReads.push(["tags"]);
    const model: ChartModel = {
        name: chartYaml.name,
        defaults: (fs.existsSync(valuesFile) ? parse(fs.readFileSync(valuesFile, "utf8")) : {}) ?? {},
        schema: fs.existsSync(schemaFile) ? JSON.parse(fs.readFileSync(schemaFile, "utf8")) : undefined,
        reads,
        wholes,
        helmReads,
        subcharts,
    };
    modelCache.set(chartDir, model);
    return model;
}

function walk(dir: string): string[] {
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const full = path.join(dir, e.name);
        return e.isDirectory() ? walk(full) : [full];
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Template scanning
// ---------------------------------------------------------------------------------------------------------------

/** What `.` or a variable stands for: the root context, a values path, or something the scan does not follow. */
type Ctx = { kind: "root" } | { kind: "values"; path: ValuePath } | { kind: "other" };
const ROOT_CTX: Ctx = { kind: "root" };
const OTHER: Ctx = { kind: "other" };

interface Scope {
    keyword: string;
    dot: Ctx;
    vars: Map<string, Ctx>;
}

const IDENT = "[A-Za-z_][A-Za-z0-9_]*";
/** A field chain: `.a.b.c`, possibly after `$` or `$var`. */
const CHAIN = new RegExp(`(\\$${IDENT}|\\$)?((?:\\.${IDENT})+)`, "g");

/** The template actions of a file, comments dropped. */
function actions(text: string): string[] {
    const out: string[] = [];
    const re = /\{\{-?([\s\S]*?)-?\}\}/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
        const body = m[1].trim();
        if (body.startsWith("/*")) continue;
        out.push(body);
    }
    return out;
}

/** Strips string literals (keeping `index` keys apart, handled before) so `"a.b"` is not read as a field chain. */
function withoutStrings(s: string): string {
    return s.replace(/"(?:[^"\\]|\\.)*"|`[^`]*`/g, '""');
}

export function scanTemplate(text: string): { reads: ValuePath[]; wholes: ValuePath[] } {
    const reads: ValuePath[] = [];
    const wholes: ValuePath[] = [];
    const stack: Scope[] = [{ keyword: "file", dot: ROOT_CTX, vars: new Map([["$", ROOT_CTX]]) }];
    const top = () => stack[stack.length - 1];
    const lookupVar = (name: string): Ctx => {
        for (let i = stack.length - 1; i >= 0; i--) {
            const v = stack[i].vars.get(name);
            if (v) return v;
        }
        return OTHER;
    };

    /** Resolves a chain (`$x.a.b`, `.Values.a`, `.a`) in the current scope to a values path, if it is one. */
    const resolve = (head: string | undefined, fields: string[]): ValuePath | undefined => {
        let base: Ctx = head ? lookupVar(head) : top().dot;
        let rest = fields;
        if (base.kind === "root") {
            if (rest[0] !== "Values") return undefined;
            base = { kind: "values", path: [] };
            rest = rest.slice(1);
        }
        if (base.kind !== "values") return undefined;
        return [...base.path, ...rest];
    };

    /** The values path an expression stands for when it is one chain or `index <chain> "k"...`, else undefined. */
    const single = (expr: string): ValuePath | undefined => {
        const e = expr
            .trim()
            .replace(/^\((.*)\)$/s, "$1")
            .replace(/\|\s*default\s+\(?dict\)?\s*$/, "")
            .trim();
        const idx = /^(?:index|get)\s+(\$[A-Za-z0-9_]*|)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)((?:\s+"[^"]*")+)$/.exec(e);
        if (idx) {
            const base = resolve(idx[1] || undefined, idx[2].split(".").filter(Boolean));
            const keys = [...idx[3].matchAll(/"([^"]*)"/g)].map((k) => k[1]);
            return base ? [...base, ...keys] : undefined;
        }
        if (e === ".") return top().dot.kind === "values" ? (top().dot as any).path : undefined;
        const m = new RegExp(`^(\\$${IDENT}|\\$)?((?:\\.${IDENT})*)$`).exec(e);
        if (!m || (!m[1] && !m[2])) return undefined;
        return resolve(m[1], m[2].split(".").filter(Boolean));
    };

    /** Records every values path an expression mentions: read, and passed on whole unless `head` (a block head). */
    const record = (expr: string, asHead: boolean): ValuePath[] => {
        const seen: ValuePath[] = [];
        // `index X "a" "b"` and `get X "a"` first (their keys are strings), with fields after a parenthesized one.
        const keyed =
            /(\()?\b(?:index|get)\s+(\$[A-Za-z0-9_]*|)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)((?:\s+"[^"]*")+)(?:\)((?:\.[A-Za-z_][A-Za-z0-9_]*)*))?/g;
        for (const m of expr.matchAll(keyed)) {
            const base = resolve(m[2] || undefined, m[3].split(".").filter(Boolean));
            if (!base) continue;
            const keys = [...m[4].matchAll(/"([^"]*)"/g)].map((k) => k[1]);
            const p = [...base, ...keys, ...(m[1] && m[5] ? m[5].split(".").filter(Boolean) : [])];
            seen.push(p);
            reads.push(p);
            if (!asHead) wholes.push(p);
        }
        const plain = withoutStrings(expr);
        for (const m of plain.matchAll(CHAIN)) {
            const fields = m[2].split(".").filter(Boolean);
            const p = resolve(m[1], fields);
            // `.Values` alone is the argument of index/get/set, not a block passed on.
            if (!p || p.length === 0) continue;
            seen.push(p);
            reads.push(p);
            if (!asHead) wholes.push(p);
        }
        // A bare `.` or `$var` passes the whole of what it stands for.
        for (const m of plain.matchAll(/(?:^|[\s(])(\.|\$[A-Za-z0-9_]*)(?=$|[\s)|,])/g)) {
            const ctx = m[1] === "." ? top().dot : lookupVar(m[1]);
            if (ctx.kind === "values" && ctx.path.length > 0) {
                seen.push(ctx.path);
                reads.push(ctx.path);
                if (!asHead) wholes.push(ctx.path);
            }
        }
        return seen;
    };

    /**
     * What a block head stands for: the one values path it is (`.Values.x`, `index . "k"`), or the one values path a
     * function of it derives from (`omit .Values.x "k"`, `.Values.x | default dict`), else something not followed.
     */
    const headCtx = (expr: string, mentioned: ValuePath[]): Ctx => {
        const p = single(expr);
        if (p) return { kind: "values", path: p };
        const distinct = [...new Set(mentioned.map((m) => JSON.stringify(m)))];
        if (distinct.length === 1) return { kind: "values", path: JSON.parse(distinct[0]) };
        // Several values combined (`.Values.a | default .Values.b`): not followed, so each counts as passed whole.
        wholes.push(...mentioned);
        return OTHER;
    };

    for (const raw of actions(text)) {
        const a = raw.replace(/\s+/g, " ");
        const kw = /^(\w+)/.exec(a)?.[1] ?? "";
        if (kw === "end") {
            if (stack.length > 1) stack.pop();
            continue;
        }
        if (kw === "define" || kw === "block") {
            stack.push({ keyword: kw, dot: ROOT_CTX, vars: new Map([["$", ROOT_CTX]]) });
            continue;
        }
        if (kw === "else") {
            // `else`, `else if X`, `else with X`: the outer dot again, or a new `with` scope.
            const rest = a.replace(/^else\s*/, "");
            const opened = stack.length > 1 ? stack.pop()! : top();
            const outer = top().dot;
            const m = /^with (.*)$/.exec(rest);
            if (m) {
                stack.push({ keyword: "with", dot: headCtx(m[1], record(m[1], true)), vars: new Map() });
            } else {
                if (rest.startsWith("if ")) record(rest.slice(3), true);
                stack.push({ keyword: opened.keyword, dot: outer, vars: new Map() });
            }
            continue;
        }
        if (kw === "with" || kw === "range" || kw === "if") {
            let expr = a.slice(kw.length).trim();
            const vars = new Map<string, Ctx>();
            const assign = /^(\$[A-Za-z0-9_]*)(?:\s*,\s*(\$[A-Za-z0-9_]*))?\s*:?=\s*(.*)$/.exec(expr);
            if (assign) expr = assign[3];
            const mentioned = record(expr, true);
            const head = kw === "if" ? OTHER : headCtx(expr, mentioned);
            let dot: Ctx = top().dot;
            if (kw === "with") dot = head;
            if (kw === "range") {
                const elem: Ctx = head.kind === "values" ? { kind: "values", path: [...head.path, "*"] } : OTHER;
                dot = elem;
                if (assign) {
                    // `range $v := X` binds the element; `range $k, $v := X` the key and the element.
                    if (assign[2]) {
                        vars.set(assign[1], OTHER);
                        vars.set(assign[2], elem);
                    } else vars.set(assign[1], elem);
                }
            } else if (assign) {
                vars.set(assign[1], head);
            }
            stack.push({ keyword: kw, dot, vars });
            continue;
        }
        // `$x := expr` / `$x = expr`: a variable for the rest of the scope.
        const assign = /^(\$[A-Za-z0-9_]*)\s*:?=\s*(.*)$/.exec(a);
        if (assign) {
            const head = headCtx(assign[2], record(assign[2], true));
            top().vars.set(assign[1], head);
            continue;
        }
        record(a, false);
    }
    return { reads, wholes };
}

// ---------------------------------------------------------------------------------------------------------------
// Matching our values against a chart
// ---------------------------------------------------------------------------------------------------------------

function isMap(v: unknown): v is Record<string, unknown> {
    return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Paths of every leaf of `values`: scalars, lists, empty maps. */
function leaves(values: unknown, at: string[] = []): string[][] {
    if (isMap(values) && Object.keys(values).length > 0) {
        return Object.entries(values).flatMap(([k, v]) => leaves(v, [...at, k]));
    }
    return [at];
}

const matches = (pattern: ValuePath, p: ValuePath) =>
    pattern.length <= p.length && pattern.every((seg, i) => seg === "*" || seg === p[i]);

/** True when the values.yaml defaults hold `p` (a key set to anything, null included). */
function declared(defaults: unknown, p: ValuePath): boolean {
    let cur: unknown = defaults;
    for (const seg of p) {
        if (!isMap(cur) || !(seg in cur)) return false;
        cur = cur[seg];
    }
    return true;
}

/** True when the JSON schema names `p` (through properties, patternProperties, additionalProperties schemas). */
function schemaDeclares(schema: any, p: ValuePath, root: any = schema, depth = 0): boolean {
    if (!schema || typeof schema !== "object" || depth > 64) return false;
    if (schema.$ref && typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
        const target = schema.$ref
            .slice(2)
            .split("/")
            .reduce((o: any, k: string) => o?.[k.replace(/~1/g, "/").replace(/~0/g, "~")], root);
        if (schemaDeclares(target, p, root, depth + 1)) return true;
    }
    for (const key of ["allOf", "anyOf", "oneOf"]) {
        for (const sub of schema[key] ?? []) if (schemaDeclares(sub, p, root, depth + 1)) return true;
    }
    if (schema.then && schemaDeclares(schema.then, p, root, depth + 1)) return true;
    if (schema.else && schemaDeclares(schema.else, p, root, depth + 1)) return true;
    if (p.length === 0) return true;
    const [head, ...rest] = p;
    if (schema.properties && head in schema.properties) {
        return schemaDeclares(schema.properties[head], rest, root, depth + 1);
    }
    for (const [pattern, sub] of Object.entries(schema.patternProperties ?? {})) {
        if (new RegExp(pattern).test(head)) return schemaDeclares(sub, rest, root, depth + 1);
    }
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
        return schemaDeclares(schema.additionalProperties, rest, root, depth + 1);
    }
    return false;
}

function readBy(model: ChartModel, p: ValuePath): boolean {
    if (declared(model.defaults, p)) return true;
    if (model.schema && schemaDeclares(model.schema, p)) return true;
    if (model.reads.some((r) => r.length === p.length && matches(r, p))) return true;
    if (model.wholes.some((w) => matches(w, p))) return true;
    if (model.helmReads.some((h) => h.length === p.length && matches(h, p))) return true;
    // A subchart reads what is under its key.
    const sub = model.subcharts.get(p[0]);
    if (sub && readBy(sub, p.slice(1))) return true;
    // `global` reaches every subchart as `global`.
    if (p[0] === "global") for (const s of model.subcharts.values()) if (readBy(s, p)) return true;
    return false;
}

/** Keys at the level of `p` that the chart does declare or read, for the message. */
function siblings(model: ChartModel, p: ValuePath): string[] {
    const parent = p.slice(0, -1);
    const out = new Set<string>();
    let cur: unknown = model.defaults;
    for (const seg of parent) cur = isMap(cur) ? cur[seg] : undefined;
    if (isMap(cur)) Object.keys(cur).forEach((k) => out.add(k));
    for (const r of model.reads) {
        if (r.length > parent.length && matches(parent, r.slice(0, parent.length))) out.add(r[parent.length]);
    }
    const sub = model.subcharts.get(p[0]);
    if (sub && p.length > 1) siblings(sub, p.slice(1)).forEach((k) => out.add(k));
    if (p.length === 1) model.subcharts.forEach((_m, k) => out.add(k));
    out.delete("*");
    return [...out].sort();
}

export function formatPath(p: ValuePath): string {
    return p
        .map((s, i) => (/^([A-Za-z_][A-Za-z0-9_-]*|\*)$/.test(s) ? (i ? "." : "") + s : `${i ? "." : ""}"${s}"`))
        .join("");
}

/** Closest names by edit distance (at most 3 shown). */
function closest(name: string, candidates: string[]): string[] {
    const dist = (a: string, b: string) => {
        const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
        for (let j = 1; j <= b.length; j++) d[0][j] = j;
        for (let i = 1; i <= a.length; i++)
            for (let j = 1; j <= b.length; j++)
                d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        return d[a.length][b.length];
    };
    return candidates
        .map((c) => ({ c, d: dist(name.toLowerCase(), c.toLowerCase()) }))
        .sort((x, y) => x.d - y.d)
        .slice(0, 3)
        .map((x) => x.c);
}

/** True when the chart reads `p` or anything under it (so `p` is a place the chart looks). */
function touches(model: ChartModel, p: ValuePath): boolean {
    if (readBy(model, p)) return true;
    if (declared(model.defaults, p)) return true;
    if (model.reads.some((r) => r.length > p.length && matches(r.slice(0, p.length), p))) return true;
    if (p.length === 1 && model.subcharts.has(p[0])) return true;
    const sub = model.subcharts.get(p[0]);
    return !!sub && p.length > 1 && touches(sub, p.slice(1));
}

/** Every leaf of `values` the chart in `chartDir` never reads (see the module comment for what counts as read). */
export function unusedValues(chartDir: string, values: Record<string, unknown>): UnusedValue[] {
    const model = chartModel(chartDir);
    const out: UnusedValue[] = [];
    const reported = new Set<string>();
    for (const leaf of leaves(values)) {
        if (leaf.length === 0 || readBy(model, leaf)) continue;
        // Report the outermost key the chart never looks at: a misplaced block is one finding, not one per leaf.
        let n = 1;
        while (n < leaf.length && touches(model, leaf.slice(0, n))) n++;
        const p = leaf.slice(0, n);
        const key = formatPath(p);
        if (reported.has(key)) continue;
        reported.add(key);
        const near = closest(p[p.length - 1], siblings(model, p));
        out.push({
            path: key,
            hint: near.length ? `the chart reads at that level: ${near.join(", ")}, ...` : "nothing at that level",
        });
    }
    return out;
}
