/**
 * Would the API server accept these objects? Three checks, each reporting (object, rule, message):
 * 1. schema: the OpenAPI schema of the target Kubernetes version, through `kubernetes-models` (`new Kind(obj).validate()`:
 *    types, required fields, formats such as quantities); custom resources against the openAPIV3Schema of the CRDs
 *    given (the ones the stack's charts install), with ajv, as the API server applies them (structural, pruning).
 * 2. unknown-field: the built-in kinds through `kubernetes-models`' TypeScript declarations, type-checked with the
 *    compiler's excess-property check, because its runtime validators accept unknown fields (strict field validation
 *    on the server rejects them); custom resources by the CRD schema's closed `properties`.
 * 3. rules the API server enforces in code rather than in the schema: names, labels, ports, containers, env, volumes,
 *    selectors.
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
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
/** Stricter than the API server (which also allows `-` and `.`): names a shell and Python settings can read. */
const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

const isDns1123Label = (s: string) => s.length <= 63 && DNS1123_LABEL.test(s);
const isDns1123Subdomain = (s: string) => s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
const isDns1035Label = (s: string) => s.length <= 63 && DNS1035_LABEL.test(s);

/** Why `key` is not a qualified name (`[prefix/]name`), or undefined. */
function qualifiedNameError(key: string): string | undefined {
    const parts = key.split("/");
    if (parts.length > 2) return "has more than one '/'";
    const name = parts[parts.length - 1];
    if (parts.length === 2 && !isDns1123Subdomain(parts[0])) return `prefix '${parts[0]}' is not a DNS-1123 subdomain`;
    if (name.length === 0 || name.length > 63) return "name part must be 1-63 characters";
    if (!QUALIFIED_NAME_PART.test(name))
        return "name part must be alphanumeric, '-', '_' or '.', start and end alphanumeric";
    return undefined;
}

/** Why `name` is not an IANA service name (container port names, named targetPorts), or undefined. */
export function ianaSvcNameError(name: string): string | undefined {
    if (name.length > 15) return `is ${name.length} characters, at most 15 allowed`;
    if (!IANA_SVC_NAME.test(name)) return "must be lower-case alphanumeric or '-', start and end alphanumeric";
    if (name.includes("--")) return "must not contain '--'";
    if (!/[a-z]/.test(name)) return "must contain at least one letter";
    return undefined;
}

/** RBAC object names are path segments (ValidateRBACName): anything but `.`, `..`, `/` and `%`. */
const isPathSegmentName = (s: string) => s.length > 0 && s !== "." && s !== ".." && !/[/%]/.test(s);
const PATH_SEGMENT = { check: isPathSegmentName, what: "a path segment name (not '.' or '..', no '/' or '%')" };

/** Kinds whose names the API server checks by another rule than a DNS-1123 subdomain. */
const NAME_RULES: Record<string, { check: (s: string) => boolean; what: string }> = {
    Service: { check: isDns1035Label, what: "a DNS-1035 label (lower-case, starts with a letter, <= 63)" },
    Namespace: { check: isDns1123Label, what: "a DNS-1123 label (<= 63)" },
    // Pod hostnames are `<statefulset>-<ordinal>`.
    StatefulSet: { check: isDns1123Label, what: "a DNS-1123 label (<= 63)" },
    Role: PATH_SEGMENT,
    ClusterRole: PATH_SEGMENT,
    RoleBinding: PATH_SEGMENT,
    ClusterRoleBinding: PATH_SEGMENT,
};
const DEFAULT_NAME_RULE = { check: isDns1123Subdomain, what: "a DNS-1123 subdomain (<= 253)" };

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

/** 3. Rules the schema does not carry. */
export function ruleProblems(o: K8sObject): Problem[] {
    const problems: Problem[] = [];
    const add = (rule: string, message: string) => problems.push({ object: objectId(o), rule, message });
    const name = o.metadata?.name;
    const nameRule = NAME_RULES[o.kind] ?? DEFAULT_NAME_RULE;
    if (typeof name !== "string" || !nameRule.check(name))
        add("name", `metadata.name '${name}' must be ${nameRule.what}`);
    const ns = o.metadata?.namespace;
    if (ns !== undefined && !isDns1123Label(ns)) add("name", `metadata.namespace '${ns}' must be a DNS-1123 label`);

    const checkLabels = (labels: Record<string, unknown> | undefined, at: string) => {
        for (const [k, v] of Object.entries(labels ?? {})) {
            const keyError = qualifiedNameError(k);
            if (keyError) add("label-key", `${at} key '${k}' ${keyError}`);
            if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) {
                add(
                    "label-value",
                    `${at}['${k}'] = '${v}': at most 63 alphanumeric, '-', '_' or '.', start and end alphanumeric`,
                );
            }
        }
    };
    checkLabels(o.metadata?.labels, "metadata.labels");
    for (const k of Object.keys(o.metadata?.annotations ?? {})) {
        const keyError = qualifiedNameError(k);
        if (keyError) add("annotation-key", `metadata.annotations key '${k}' ${keyError}`);
    }
    if (o.spec?.selector?.matchLabels) checkLabels(o.spec.selector.matchLabels, "spec.selector.matchLabels");

    for (const { at, labels, spec } of podSpecs(o)) {
        checkLabels(labels, `${at.replace(/\.spec$/, "")}.metadata.labels`);
        const matchLabels: Record<string, string> = o.spec?.selector?.matchLabels ?? {};
        for (const [k, v] of Object.entries(matchLabels)) {
            if (labels?.[k] !== v)
                add("selector", `spec.selector.matchLabels ${k}=${v} does not match the pod template labels`);
        }
        // A StatefulSet's volumeClaimTemplates are volumes of its pods too.
        const claims: string[] =
            o.kind === "StatefulSet" ? (o.spec?.volumeClaimTemplates ?? []).map((c: any) => c.metadata?.name) : [];
        podSpecProblems(spec ?? {}, at, add, claims);
    }

    if (o.kind === "Service" && o.apiVersion === "v1") {
        const ports: any[] = o.spec?.ports ?? [];
        const names = new Set<string>();
        for (const [i, p] of ports.entries()) {
            if (ports.length > 1 && !p.name)
                add("service-port", `spec.ports[${i}] needs a name: the Service has several ports`);
            if (p.name !== undefined) {
                if (!isDns1123Label(p.name))
                    add("service-port", `spec.ports[${i}].name '${p.name}' must be a DNS-1123 label`);
                if (names.has(p.name)) add("service-port", `spec.ports[${i}].name '${p.name}' is not unique`);
                names.add(p.name);
            }
            if (typeof p.targetPort === "string") {
                const e = ianaSvcNameError(p.targetPort);
                if (e) add("port-name", `spec.ports[${i}].targetPort '${p.targetPort}' ${e}`);
            }
        }
    }
    return problems;
}

function podSpecProblems(
    spec: any,
    at: string,
    add: (rule: string, message: string) => void,
    claimTemplates: readonly string[] = [],
): void {
    const volumes = new Set<string>(claimTemplates);
    for (const [i, v] of (spec.volumes ?? []).entries()) {
        if (!isDns1123Label(v.name)) add("volume", `${at}.volumes[${i}].name '${v.name}' must be a DNS-1123 label`);
        if (volumes.has(v.name)) add("volume", `${at}.volumes[${i}].name '${v.name}' is not unique`);
        volumes.add(v.name);
    }
    const containerNames = new Set<string>();
    const groups: [string, any[]][] = [
        ["initContainers", spec.initContainers ?? []],
        ["containers", spec.containers ?? []],
        ["ephemeralContainers", spec.ephemeralContainers ?? []],
    ];
    for (const [field, containers] of groups) {
        for (const [i, c] of containers.entries()) {
            const cat = `${at}.${field}[${i}]`;
            if (!isDns1123Label(c.name ?? ""))
                add("container-name", `${cat}.name '${c.name}' must be a DNS-1123 label`);
            if (containerNames.has(c.name)) add("container-name", `${cat}.name '${c.name}' is not unique in the pod`);
            containerNames.add(c.name);

            const portNames = new Set<string>();
            for (const [j, p] of (c.ports ?? []).entries()) {
                if (p.name === undefined) continue;
                const e = ianaSvcNameError(p.name);
                if (e) add("port-name", `${cat}.ports[${j}].name '${p.name}' ${e}`);
                if (portNames.has(p.name))
                    add("port-name", `${cat}.ports[${j}].name '${p.name}' is not unique in the container`);
                portNames.add(p.name);
            }
            for (const [j, e] of (c.env ?? []).entries()) {
                if (!C_IDENTIFIER.test(e.name ?? "")) {
                    add(
                        "env-name",
                        `${cat}.env[${j}].name '${e.name}' must be a C identifier ([A-Za-z_][A-Za-z0-9_]*)`,
                    );
                }
            }
            const mountPaths = new Set<string>();
            for (const [j, m] of (c.volumeMounts ?? []).entries()) {
                if (!volumes.has(m.name))
                    add("volume", `${cat}.volumeMounts[${j}] names volume '${m.name}', which the pod does not declare`);
                if (mountPaths.has(m.mountPath))
                    add("volume", `${cat}.volumeMounts[${j}].mountPath '${m.mountPath}' is mounted twice`);
                mountPaths.add(m.mountPath);
            }
        }
    }
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
    return [...schema, ...typed, ...customResourceProblems(custom, crds), ...objects.flatMap(ruleProblems)];
}

/** One line per problem, for test failure messages and the lint script. */
export function formatProblems(problems: readonly Problem[]): string {
    return problems.map((p) => `${p.object}: [${p.rule}] ${p.message}`).join("\n");
}
