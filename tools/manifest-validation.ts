/**
 * Would the API server accept these objects? Three checks, each reporting (object, rule, message):
 * 1. schema: the OpenAPI schema of the target Kubernetes version, through `kubernetes-models` (`new Kind(obj).validate()`:
 *    types, required fields, formats such as quantities); custom resources against the openAPIV3Schema of the CRDs
 *    given (the ones the stack's charts install), with ajv, as the API server applies them (structural, pruning).
 * 2. unknown-field: the built-in kinds through `kubernetes-models`' TypeScript declarations, type-checked with the
 *    compiler's excess-property check, because its runtime validators accept unknown fields (strict field validation
 *    on the server rejects them); custom resources by the CRD schema's closed `properties`.
 * 3. what the API server accepts but this program must not (env names that are not C identifiers). The rules the
 *    server enforces in code (names, labels, ports, selectors, volumes) are its own: the API server tier
 *    (test/tiers/apiserver*.test.ts) applies every object to a real kube-apiserver.
 */
import * as fs from "fs";
import * as path from "path";
import * as ts from "typescript";
import { ROOT } from "./harness";
import { K8sObject } from "./render-lib";

/** ajv 8 (JSON Schema draft 7, `nullable` as OpenAPI has it), the validator the CRD schemas are checked with. */
const Ajv = require("ajv").default;

/** The Kubernetes version whose API we validate against: the one `kubernetes-models` 5.1.0 is generated from. */
export const TARGET_KUBERNETES = "1.34";

/** The package of the built-in kinds' schemas: `<package>/<group>/<version>/<Kind>` (core group: `v1/<Kind>`). */
export const SCHEMA_PACKAGE = "kubernetes-models";

export interface Problem {
    /** `<Kind>/<namespace>/<name>` (no namespace segment for cluster-scoped objects). */
    object: string;
    rule: string;
    message: string;
}

export function objectId(o: K8sObject): string {
    return [o.kind, o.metadata?.namespace, o.metadata?.name].filter((x) => x !== undefined).join("/");
}

/** The module (import path) of the model class of a built-in apiVersion/kind, or undefined for any other kind. */
export function schemaModule(apiVersion: string, kind: string): string | undefined {
    // `apps/v1` is a folder of the package; the core group's `v1` too.
    const found = fs.existsSync(path.join(ROOT, "node_modules", SCHEMA_PACKAGE, apiVersion, `${kind}.d.ts`));
    return found ? `${SCHEMA_PACKAGE}/${apiVersion}/${kind}` : undefined;
}

/** 1. Schema validation at run time of built-in kinds (see schemaModule; custom resources: customResourceProblems). */
export function schemaProblems(objects: readonly K8sObject[]): Problem[] {
    const problems: Problem[] = [];
    for (const o of objects) {
        const mod = schemaModule(o.apiVersion, o.kind);
        if (!mod) throw new Error(`${objectId(o)}: ${o.apiVersion} ${o.kind} is not a built-in kind`);
        const Model = require(mod)[o.kind];
        try {
            new Model(o).validate();
        } catch (e) {
            const errors: { instancePath: string; message: string }[] = (e as any).errors ?? [];
            if (errors.length === 0) throw e;
            // One problem per field: an int-or-string or quantity field fails several branches of one `oneOf`.
            const byPath = new Map<string, string[]>();
            for (const err of errors) {
                const at = err.instancePath || "/";
                const messages = byPath.get(at) ?? [];
                if (!messages.includes(err.message)) byPath.set(at, [...messages, err.message]);
            }
            for (const [at, messages] of byPath) {
                problems.push({ object: objectId(o), rule: "schema", message: `${at} ${messages.join(", ")}` });
            }
        }
    }
    return problems;
}

/**
 * 2. Unknown fields: each object becomes a typed constant in a generated TypeScript file, and the compiler reports
 * any property the model's interface does not declare (and any type mismatch it sees first).
 */
let lastProgram: ts.Program | undefined;

export function unknownFieldProblems(objects: readonly K8sObject[]): Problem[] {
    const typed = objects
        .map((o, i) => ({ o, i, mod: schemaModule(o.apiVersion, o.kind) }))
        .filter((x): x is { o: K8sObject; i: number; mod: string } => x.mod !== undefined);
    if (typed.length === 0) return [];
    const lines = typed.flatMap(({ o, i, mod }) => [
        `import type { I${o.kind} as T${i} } from ${JSON.stringify(mod)};`,
        `export const o${i}: T${i} = ${JSON.stringify(o)};`,
    ]);
    const file = path.join(ROOT, "test", "__manifests__.generated.ts");
    const source = lines.join("\n");
    const host = ts.createCompilerHost({});
    const readFile = host.getSourceFile;
    host.getSourceFile = (f, lang, ...rest) =>
        path.resolve(f) === file ? ts.createSourceFile(f, source, lang) : readFile(f, lang, ...rest);
    const fileExists = host.fileExists;
    host.fileExists = (f) => path.resolve(f) === file || fileExists(f);
    // Reusing the previous program skips re-reading the unchanged declaration files (about 1 s per call).
    const program = (lastProgram = ts.createProgram(
        [file],
        {
            strict: true,
            noEmit: true,
            skipLibCheck: true,
            types: [],
            target: ts.ScriptTarget.ES2022,
            module: ts.ModuleKind.CommonJS,
            moduleResolution: ts.ModuleResolutionKind.Node10,
        },
        host,
        lastProgram,
    ));
    const problems: Problem[] = [];
    for (const d of ts.getPreEmitDiagnostics(program)) {
        const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
        if (!d.file || path.resolve(d.file.fileName) !== file || d.start === undefined) {
            throw new Error(`type-checking the manifests failed outside them: ${message}`);
        }
        const line = d.file.getLineAndCharacterOfPosition(d.start).line;
        const { o } = typed[Math.floor(line / 2)];
        // 2353: "Object literal may only specify known properties". Other findings are type errors, which the
        // run-time schema check reports with a field path; the compiler shows one error per object at a time.
        problems.push({ object: objectId(o), rule: d.code === 2353 ? "unknown-field" : "schema", message });
    }
    return problems;
}

// Patterns from k8s.io/apimachinery/pkg/util/validation.
/** Stricter than the API server (which also allows `-` and `.`): names a shell and Python settings can read. */
const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The pod template spec of a workload kind, with its path, if the object has one. */
export function podSpecs(o: K8sObject): { at: string; labels?: Record<string, string>; spec: any }[] {
    switch (o.kind) {
        case "Pod":
            return [{ at: "spec", labels: o.metadata.labels, spec: o.spec }];
        case "Deployment":
        case "StatefulSet":
        case "DaemonSet":
        case "ReplicaSet":
        case "Job":
            return o.spec?.template
                ? [{ at: "spec.template.spec", labels: o.spec.template.metadata?.labels, spec: o.spec.template.spec }]
                : [];
        case "CronJob": {
            const t = o.spec?.jobTemplate?.spec?.template;
            return t ? [{ at: "spec.jobTemplate.spec.template.spec", labels: t.metadata?.labels, spec: t.spec }] : [];
        }
        default:
            return [];
    }
}

/**
 * 3. What the API server cannot check, because it allows it: an env name that is not a C identifier (the server takes
 * any printable name; a shell and pydantic settings read only identifiers). Every rule the server itself enforces
 * (names, labels, ports, selectors, volumes) is left to it: the API server tier applies every object.
 */
export function stricterThanServerProblems(o: K8sObject): Problem[] {
    const problems: Problem[] = [];
    for (const { at, spec } of podSpecs(o)) {
        for (const field of ["initContainers", "containers", "ephemeralContainers"]) {
            for (const [i, c] of (spec?.[field] ?? []).entries()) {
                for (const [j, e] of (c.env ?? []).entries()) {
                    if (!C_IDENTIFIER.test(e.name ?? "")) {
                        problems.push({
                            object: objectId(o),
                            rule: "env-name",
                            message: `${at}.${field}[${i}].env[${j}].name '${e.name}' must be a C identifier ([A-Za-z_][A-Za-z0-9_]*)`,
                        });
                    }
                }
            }
        }
    }
    return problems;
}

/**
 * A CRD version's schema as the API server applies it: unknown fields of an object with `properties` are pruned
 * (and refused under strict field validation) unless `x-kubernetes-preserve-unknown-fields`; an embedded resource
 * also has apiVersion, kind and metadata.
 */
function structural(schema: any): any {
    if (Array.isArray(schema)) return schema.map(structural);
    if (!schema || typeof schema !== "object") return schema;
    const out: any = {};
    for (const [k, v] of Object.entries(schema)) {
        out[k] =
            k === "properties"
                ? Object.fromEntries(Object.entries(v as any).map(([p, s]) => [p, structural(s)]))
                : structural(v);
    }
    if (out["x-kubernetes-embedded-resource"] && out.properties) {
        out.properties = {
            apiVersion: { type: "string" },
            kind: { type: "string" },
            metadata: { type: "object" },
            ...out.properties,
        };
    }
    if (out["x-kubernetes-int-or-string"]) {
        delete out.type;
        out.anyOf = [{ type: "integer" }, { type: "string" }];
    }
    if (out.properties && out.additionalProperties === undefined && !out["x-kubernetes-preserve-unknown-fields"]) {
        out.additionalProperties = false;
    }
    return out;
}

type Validator = ((o: unknown) => boolean) & {
    errors?: { instancePath: string; message?: string; keyword: string; params: any }[];
};

/** Compiled CRD schemas by their text, for the process (compiling the stack's CRDs takes about 1 s). */
const compiledCrdSchemas = new Map<string, Validator>();
const crdAjv = new Ajv({ strict: false, allErrors: true, validateFormats: false });

/** Validators by `<group>/<version>/<Kind>` from CRD objects. */
export function crdValidators(crds: readonly K8sObject[]): Map<string, Validator> {
    const out = new Map<string, Validator>();
    for (const crd of crds) {
        const group = crd.spec?.group;
        const kind = crd.spec?.names?.kind;
        for (const v of crd.spec?.versions ?? []) {
            const schema = v.schema?.openAPIV3Schema;
            if (!schema) continue;
            const text = JSON.stringify(schema);
            const known = compiledCrdSchemas.get(text);
            if (known) {
                out.set(`${group}/${v.name}/${kind}`, known);
                continue;
            }
            const root = structural(schema);
            // Every object has these, whatever the CRD's schema says of them.
            root.properties = {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                ...root.properties,
            };
            const validate = crdAjv.compile(root);
            compiledCrdSchemas.set(text, validate);
            out.set(`${group}/${v.name}/${kind}`, validate);
        }
    }
    return out;
}

/** 1-2 for custom resources: each against its CRD's schema; a kind no CRD given defines is a problem of its own. */
export function customResourceProblems(objects: readonly K8sObject[], crds: readonly K8sObject[]): Problem[] {
    const validators = crdValidators(crds);
    const problems: Problem[] = [];
    for (const o of objects) {
        const validate = validators.get(`${o.apiVersion}/${o.kind}`);
        if (!validate) {
            problems.push({
                object: objectId(o),
                rule: "schema",
                message: `no schema for ${o.apiVersion} ${o.kind}: not a built-in kind of ${SCHEMA_PACKAGE} nor defined by a CRD given`,
            });
            continue;
        }
        if (validate(o)) continue;
        for (const e of validate.errors ?? []) {
            const unknown = e.keyword === "additionalProperties";
            problems.push({
                object: objectId(o),
                rule: unknown ? "unknown-field" : "schema",
                message: unknown
                    ? `${e.instancePath || "/"}: unknown field "${e.params.additionalProperty}" (the CRD schema does not declare it)`
                    : `${e.instancePath || "/"} ${e.message}${e.params?.allowedValues ? `: ${e.params.allowedValues.join(", ")}` : ""}`,
            });
        }
    }
    return problems;
}

/**
 * Every problem of every object (patches excluded by the caller: they are partial on purpose); custom resources
 * against `crds`. One type-check for all objects (the compiler's start-up dominates).
 */
export function validateObjects(objects: readonly K8sObject[], crds: readonly K8sObject[] = []): Problem[] {
    const builtIn = objects.filter((o) => schemaModule(o.apiVersion, o.kind));
    const custom = objects.filter((o) => !schemaModule(o.apiVersion, o.kind));
    const schema = schemaProblems(builtIn);
    const seen = new Set(schema.map((p) => p.object));
    // A type error the schema check already reported for an object is not repeated from the compiler.
    const typed = unknownFieldProblems(builtIn).filter((p) => p.rule === "unknown-field" || !seen.has(p.object));
    return [
        ...schema,
        ...typed,
        ...customResourceProblems(custom, crds),
        ...objects.flatMap(stricterThanServerProblems),
    ];
}

/** One line per problem, for test failure messages and the lint script. */
export function formatProblems(problems: readonly Problem[]): string {
    return problems.map((p) => `${p.object}: [${p.rule}] ${p.message}`).join("\n");
}
