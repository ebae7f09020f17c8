/**
 * Checks every Helm release of a stack from the inside, on what `helm template` renders (tools/helm-render.ts):
 * - unused-value: a value we pass that the chart never reads (tools/unread-chart-values.ts);
 * - schema / unknown-field / naming rules: each rendered object through the same validation as our own objects
 *   (tools/manifest-validation.ts), custom resources against the openAPIV3Schema of the CRDs the stack's charts ship,
 *   with unknown fields refused as the API server's strict field validation refuses them;
 * - pod-security: every pod template against the Pod Security level its namespace enforces (components/platform/namespaces.ts
 *   labels), by Kubernetes' own evaluator (k8s.io/pod-security-admission, test/psa-check);
 * - reference: a Secret (and key), ConfigMap, ServiceAccount or Service that a rendered object names and that
 *   neither the program nor any chart of the stack creates (nor a controller the stack runs, each listed below).
 */
import { execFileSync } from "child_process";
import * as path from "path";
import { ROOT } from "../tools/harness";
import { K8sObject, Rendered } from "../tools/render-lib";
import { extractChart, unusedValues } from "../tools/unread-chart-values";
import { ChartRender, isClusterScoped } from "../tools/helm-render";
import { objectId, podSpecs, validateObjects } from "../tools/manifest-validation";

export interface ChartProblem {
    /** Helm release name. */
    release: string;
    /** `<Kind>/<namespace>/<name>` of the object, or `values` for a values finding. */
    object: string;
    rule: "unused-value" | "schema" | "unknown-field" | "pod-security" | "reference" | string;
    message: string;
}

export function formatChartProblems(problems: readonly ChartProblem[]): string {
    return problems.map((p) => `${p.release}: ${p.object}: [${p.rule}] ${p.message}`).join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------------

export function unusedValueProblems(charts: readonly ChartRender[]): ChartProblem[] {
    return charts.flatMap((c) =>
        unusedValues(extractChart(c.archive), c.values).map((u) => ({
            release: c.release,
            object: "values",
            rule: "unused-value",
            message: `${u.path}: chart ${c.chart} ${c.version} never reads it (${u.hint})`,
        })),
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Objects: schema and unknown fields
// ---------------------------------------------------------------------------------------------------------------

/**
 * Schema, unknown-field and naming problems of the charts' rendered objects (tools/manifest-validation.ts), custom
 * resources against `crds`, each problem with its release.
 */
export function objectProblems(charts: readonly ChartRender[], crds: readonly K8sObject[]): ChartProblem[] {
    const releaseOf = new Map<string, string>();
    const objects = charts.flatMap((c) => c.objects.map((o) => (releaseOf.set(objectId(o), c.release), o)));
    return validateObjects(objects, crds).map((p) => ({ release: releaseOf.get(p.object) ?? "(unknown)", ...p }));
}

// ---------------------------------------------------------------------------------------------------------------
// Pod Security
// ---------------------------------------------------------------------------------------------------------------

export interface NamespaceLevel {
    level: string;
    version: string;
}

/** The enforced Pod Security level of each namespace the program creates. */
export function namespaceLevels(rendered: Rendered): Map<string, NamespaceLevel> {
    const out = new Map<string, NamespaceLevel>();
    for (const { object } of rendered.objects) {
        if (object.kind !== "Namespace" || object.apiVersion !== "v1") continue;
        const labels = object.metadata.labels ?? {};
        out.set(object.metadata.name, {
            level: labels["pod-security.kubernetes.io/enforce"] ?? "privileged",
            version: labels["pod-security.kubernetes.io/enforce-version"] ?? "latest",
        });
    }
    return out;
}

/** The psa-check binary (scripts/build-psa-check.sh builds it, or reuses the build it made). */
let psaBinary: string | undefined;
export function psaCheck(): string {
    psaBinary ??= execFileSync("bash", [path.join(ROOT, "scripts", "build-psa-check.sh")], { encoding: "utf8" }).trim();
    return psaBinary;
}

interface PsaResult {
    id: string;
    allowed: boolean;
    forbidden: { reason: string; detail: string }[];
}

/** Pods a namespace's enforced level refuses, by Kubernetes' own evaluator. */
export function podSecurityProblems(
    charts: readonly ChartRender[],
    levels: ReadonlyMap<string, NamespaceLevel>,
): ChartProblem[] {
    const problems: ChartProblem[] = [];
    const requests: { id: string; level: string; version: string; metadata: unknown; spec: unknown }[] = [];
    const owner = new Map<string, { release: string; object: string }>();
    for (const c of charts) {
        for (const o of c.objects) {
            for (const { at, spec } of podSpecs(o)) {
                const ns = o.metadata.namespace ?? c.namespace;
                const level = levels.get(ns);
                if (!level) {
                    problems.push({
                        release: c.release,
                        object: objectId(o),
                        rule: "pod-security",
                        message: `runs pods in namespace ${ns}, which the program does not create, so nothing sets its Pod Security level`,
                    });
                    continue;
                }
                const id = `${objectId(o)}#${at}`;
                owner.set(id, { release: c.release, object: objectId(o) });
                const template =
                    o.kind === "Pod" ? o : o.kind === "CronJob" ? o.spec.jobTemplate.spec.template : o.spec.template;
                requests.push({
                    id,
                    level: level.level,
                    version: level.version,
                    metadata: template.metadata ?? {},
                    spec,
                });
            }
        }
    }
    if (requests.length === 0) return problems;
    const results: PsaResult[] = JSON.parse(
        execFileSync(psaCheck(), [], {
            input: JSON.stringify(requests),
            encoding: "utf8",
            maxBuffer: 64 * 1024 * 1024,
        }),
    );
    for (const [i, r] of results.entries()) {
        if (r.allowed) continue;
        const who = owner.get(r.id)!;
        problems.push({
            release: who.release,
            object: who.object,
            rule: "pod-security",
            message: `namespace enforces ${requests[i].level}; refused: ${r.forbidden.map((f) => `${f.reason} (${f.detail})`).join("; ")}`,
        });
    }
    return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------------------------

/** What exists in the cluster once the stack is up: kind/namespace/name, with the keys of Secrets and ConfigMaps. */
export class Inventory {
    private readonly items = new Map<string, { keys?: Set<string>; why: string }>();

    add(kind: string, namespace: string | undefined, name: string, why: string, keys?: Iterable<string>): void {
        const k = `${kind}/${namespace ?? ""}/${name}`;
        const prev = this.items.get(k);
        const merged = keys ? new Set([...(prev?.keys ?? []), ...keys]) : prev?.keys;
        this.items.set(k, { keys: merged, why: prev?.why ?? why });
    }

    get(kind: string, namespace: string | undefined, name: string) {
        return this.items.get(`${kind}/${namespace ?? ""}/${name}`);
    }

    addObject(o: K8sObject, why: string): void {
        const ns = isClusterScoped(o) ? undefined : o.metadata.namespace;
        const keys =
            o.kind === "Secret" || o.kind === "ConfigMap"
                ? [...Object.keys(o.data ?? {}), ...Object.keys(o.stringData ?? {}), ...Object.keys(o.binaryData ?? {})]
                : undefined;
        this.add(o.kind, ns, o.metadata.name, why, keys);
        this.addCreatedBy(o);
    }

    /** Objects a controller the stack runs creates from this one (each with the keys it writes). */
    private addCreatedBy(o: K8sObject): void {
        const ns = o.metadata.namespace;
        // cert-manager writes a Certificate's Secret, and the ingress-shim one per Ingress TLS entry.
        const tlsKeys = ["tls.crt", "tls.key", "ca.crt"];
        if (o.apiVersion === "cert-manager.io/v1" && o.kind === "Certificate" && o.spec?.secretName) {
            this.add("Secret", ns, o.spec.secretName, `cert-manager, for Certificate ${o.metadata.name}`, tlsKeys);
        }
        if (o.kind === "Ingress" && o.metadata.annotations?.["cert-manager.io/cluster-issuer"]) {
            for (const t of o.spec?.tls ?? []) {
                if (t.secretName)
                    this.add(
                        "Secret",
                        ns,
                        t.secretName,
                        `cert-manager ingress-shim, for Ingress ${o.metadata.name}`,
                        tlsKeys,
                    );
            }
        }
        // Every namespace gets the `default` ServiceAccount and the cluster's CA bundle ConfigMap.
        if (o.kind === "Namespace") {
            this.add("ServiceAccount", o.metadata.name, "default", "the namespace controller");
            this.add("ConfigMap", o.metadata.name, "kube-root-ca.crt", "the root CA publisher", ["ca.crt"]);
        }
    }
}

/** Everything the program and the charts create, plus what the cluster itself provides. */
export function inventory(rendered: Rendered, charts: readonly ChartRender[]): Inventory {
    const inv = new Inventory();
    inv.add("Service", "default", "kubernetes", "the API server");
    for (const { object, patch } of rendered.objects) if (!patch) inv.addObject(object, "the program");
    for (const c of charts) for (const o of c.objects) inv.addObject(o, `release ${c.release}`);
    return inv;
}

interface Ref {
    kind: "Secret" | "ConfigMap" | "Service" | "ServiceAccount";
    namespace: string;
    name: string;
    key?: string;
    optional: boolean;
    at: string;
}

/** The references a pod spec makes. */
function podRefs(spec: any, ns: string, at: string): Ref[] {
    const refs: Ref[] = [];
    const add = (kind: Ref["kind"], name: string | undefined, where: string, key?: string, optional?: boolean) => {
        if (name) refs.push({ kind, namespace: ns, name, key, optional: optional === true, at: `${at}.${where}` });
    };
    add("ServiceAccount", spec.serviceAccountName ?? "default", "serviceAccountName");
    for (const [i, s] of (spec.imagePullSecrets ?? []).entries()) add("Secret", s.name, `imagePullSecrets[${i}]`);
    for (const [i, v] of (spec.volumes ?? []).entries()) {
        const w = `volumes[${i}]`;
        if (v.secret) {
            const items: any[] = v.secret.items ?? [];
            if (items.length === 0) add("Secret", v.secret.secretName, w, undefined, v.secret.optional);
            for (const it of items) add("Secret", v.secret.secretName, w, it.key, v.secret.optional);
        }
        if (v.configMap) {
            const items: any[] = v.configMap.items ?? [];
            if (items.length === 0) add("ConfigMap", v.configMap.name, w, undefined, v.configMap.optional);
            for (const it of items) add("ConfigMap", v.configMap.name, w, it.key, v.configMap.optional);
        }
        for (const src of v.projected?.sources ?? []) {
            for (const [kind, field] of [
                ["Secret", "secret"],
                ["ConfigMap", "configMap"],
            ] as const) {
                const s = src[field];
                if (!s) continue;
                const items: any[] = s.items ?? [];
                if (items.length === 0) add(kind, s.name, w, undefined, s.optional);
                for (const it of items) add(kind, s.name, w, it.key, s.optional);
            }
        }
    }
    const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
    for (const c of containers) {
        const w = `containers[${c.name}]`;
        for (const e of c.env ?? []) {
            const s = e.valueFrom?.secretKeyRef;
            if (s) add("Secret", s.name, `${w}.env[${e.name}]`, s.key, s.optional);
            const m = e.valueFrom?.configMapKeyRef;
            if (m) add("ConfigMap", m.name, `${w}.env[${e.name}]`, m.key, m.optional);
        }
        for (const [i, f] of (c.envFrom ?? []).entries()) {
            if (f.secretRef) add("Secret", f.secretRef.name, `${w}.envFrom[${i}]`, undefined, f.secretRef.optional);
            if (f.configMapRef)
                add("ConfigMap", f.configMapRef.name, `${w}.envFrom[${i}]`, undefined, f.configMapRef.optional);
        }
    }
    return refs;
}

/** `<service>.<namespace>.svc` host names in any string of the object (configs, URLs, certificate names). */
const SVC_HOST = /\b([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.svc\b/g;

function strings(v: unknown, out: string[] = []): string[] {
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
    else if (v && typeof v === "object") Object.values(v).forEach((x) => strings(x, out));
    return out;
}

/** Every reference an object makes. */
export function objectRefs(o: K8sObject): Ref[] {
    const ns = o.metadata.namespace ?? "";
    const refs: Ref[] = podSpecs(o).flatMap(({ at, spec }) => podRefs(spec ?? {}, ns, at));
    const svc = (namespace: string, name: string | undefined, at: string) => {
        if (name) refs.push({ kind: "Service", namespace, name, optional: false, at });
    };
    if (o.kind === "StatefulSet" && o.spec?.serviceName) svc(ns, o.spec.serviceName, "spec.serviceName");
    if (o.kind === "MutatingWebhookConfiguration" || o.kind === "ValidatingWebhookConfiguration") {
        for (const [i, w] of (o.webhooks ?? []).entries()) {
            const s = w.clientConfig?.service;
            if (s) svc(s.namespace, s.name, `webhooks[${i}].clientConfig.service`);
        }
    }
    if (o.kind === "APIService" && o.spec?.service) svc(o.spec.service.namespace, o.spec.service.name, "spec.service");
    if (o.kind === "CustomResourceDefinition") {
        const s = o.spec?.conversion?.webhook?.clientConfig?.service;
        if (s) svc(s.namespace, s.name, "spec.conversion.webhook.clientConfig.service");
    }
    if (o.kind === "Ingress") {
        for (const r of o.spec?.rules ?? []) {
            for (const p of r.http?.paths ?? []) svc(ns, p.backend?.service?.name, `spec.rules[${r.host}]`);
        }
    }
    // CloudNativePG reads role and bootstrap passwords from basic-auth Secrets (username, password).
    if (o.apiVersion === "postgresql.cnpg.io/v1" && o.kind === "Cluster") {
        const basicAuth = (name: string | undefined, at: string) => {
            for (const key of ["username", "password"]) {
                if (name) refs.push({ kind: "Secret", namespace: ns, name, key, optional: false, at });
            }
        };
        basicAuth(o.spec?.bootstrap?.initdb?.secret?.name, "spec.bootstrap.initdb.secret");
        for (const r of o.spec?.managed?.roles ?? [])
            basicAuth(r.passwordSecret?.name, `spec.managed.roles[${r.name}].passwordSecret`);
        if (o.spec?.superuserSecret?.name) basicAuth(o.spec.superuserSecret.name, "spec.superuserSecret");
    }
    // The Barman Cloud plugin's ObjectStore reads object store credentials (and a CA bundle) from Secret keys.
    if (o.apiVersion === "barmancloud.cnpg.io/v1" && o.kind === "ObjectStore") {
        const conf = o.spec?.configuration ?? {};
        const keyRef = (ref: any, at: string) => {
            if (ref?.name && ref?.key)
                refs.push({ kind: "Secret", namespace: ns, name: ref.name, key: ref.key, optional: false, at });
        };
        for (const block of ["s3Credentials", "azureCredentials", "googleCredentials"]) {
            for (const [field, ref] of Object.entries(conf[block] ?? {}))
                keyRef(ref, `spec.configuration.${block}.${field}`);
        }
        keyRef(conf.endpointCA, "spec.configuration.endpointCA");
    }
    // Host names in configuration (scrape targets, datasource URLs, webhook certificates).
    if (o.kind !== "CustomResourceDefinition") {
        for (const s of strings({ data: o.data, spec: o.spec, stringData: o.stringData })) {
            for (const m of s.matchAll(SVC_HOST)) svc(m[2], m[1], `a configured host name (${m[0]})`);
        }
    }
    return refs;
}

/** References of rendered chart objects that nothing in the stack (nor the cluster) provides. */
export function referenceProblems(charts: readonly ChartRender[], inv: Inventory): ChartProblem[] {
    const problems: ChartProblem[] = [];
    for (const c of charts) {
        for (const o of c.objects) {
            for (const r of objectRefs(o)) {
                if (r.optional) continue;
                const found = inv.get(r.kind, r.namespace, r.name);
                const where = `${r.at} names ${r.kind} ${r.namespace}/${r.name}`;
                if (!found) {
                    problems.push({
                        release: c.release,
                        object: objectId(o),
                        rule: "reference",
                        message: `${where}, which neither the program nor a chart of the stack creates`,
                    });
                } else if (r.key !== undefined && found.keys && !found.keys.has(r.key)) {
                    problems.push({
                        release: c.release,
                        object: objectId(o),
                        rule: "reference",
                        message: `${where} key ${r.key}; it has ${[...found.keys].sort().join(", ") || "no keys"} (created by ${found.why})`,
                    });
                }
            }
        }
    }
    return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Everything
// ---------------------------------------------------------------------------------------------------------------

/**
 * Every problem of the releases of a stack (`only`: of these releases; references and CRDs still resolve against
 * the whole stack).
 */
export function checkCharts(
    rendered: Rendered,
    charts: readonly ChartRender[],
    only?: readonly string[],
): ChartProblem[] {
    const crds = charts.flatMap((c) => c.crds);
    const checked = only ? charts.filter((c) => only.includes(c.release)) : charts;
    const t: [string, number][] = [["start", Date.now()]];
    const mark = (what: string) => t.push([what, Date.now()]);
    const unused = unusedValueProblems(checked);
    mark("unused");
    const objects = objectProblems(checked, crds);
    mark("objects");
    const psa = podSecurityProblems(checked, namespaceLevels(rendered));
    mark("psa");
    const refs = referenceProblems(checked, inventory(rendered, charts));
    mark("refs");
    if (process.env.FX_TIMING) console.log(t.map(([w, at], i) => (i ? `${w} ${at - t[i - 1][1]}ms` : "")).join(" "));
    return [...unused, ...objects, ...psa, ...refs];
}
