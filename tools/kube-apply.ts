/**
 * Server-side apply, dry-run and pod-template admission against a real API server (tools/apiserver.ts), one object at
 * a time so that every rejection and warning carries the object it belongs to and the server's own message.
 */
import * as crypto from "crypto";
import { parseAllDocuments } from "yaml";
import { ApiResponse, ApiServer } from "./apiserver";

export interface KubeObject {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
    [key: string]: any;
}

/** One object's outcome: the HTTP status, the server's message when refused, its Warning headers. */
export interface Outcome {
    id: string;
    status: number;
    message?: string;
    warnings: string[];
}

interface ResourceInfo {
    plural: string;
    namespaced: boolean;
}

/** The API server's discovery: apiVersion + kind -> REST resource. Refresh it after installing CRDs. */
export class Discovery {
    private map = new Map<string, ResourceInfo>();
    constructor(private readonly server: ApiServer) {}

    async refresh(): Promise<void> {
        const map = new Map<string, ResourceInfo>();
        const groupVersions = ["v1"];
        const apis = await this.server.request("GET", "/apis");
        for (const g of apis.body.groups ?? []) for (const v of g.versions) groupVersions.push(v.groupVersion);
        for (const gv of groupVersions) {
            const r = await this.server.request("GET", gv === "v1" ? "/api/v1" : `/apis/${gv}`);
            for (const res of r.body?.resources ?? []) {
                if (res.name.includes("/")) continue; // subresources
                map.set(`${gv}/${res.kind}`, { plural: res.name, namespaced: res.namespaced });
            }
        }
        this.map = map;
    }

    info(apiVersion: string, kind: string): ResourceInfo {
        const info = this.map.get(`${apiVersion}/${kind}`);
        if (!info) throw new Error(`the API server serves no ${kind} in ${apiVersion} (is its CRD installed?)`);
        return info;
    }

    /** The object's REST path; namespaced objects without a namespace go to `default`, as Pulumi's provider does. */
    path(obj: KubeObject): string {
        const { plural, namespaced } = this.info(obj.apiVersion, obj.kind);
        const base = obj.apiVersion === "v1" ? "/api/v1" : `/apis/${obj.apiVersion}`;
        const ns = namespaced ? `/namespaces/${obj.metadata.namespace ?? "default"}` : "";
        return `${base}${ns}/${plural}/${encodeURIComponent(obj.metadata.name)}`;
    }

    namespaced(obj: KubeObject): boolean {
        return this.info(obj.apiVersion, obj.kind).namespaced;
    }
}

export function objectId(obj: KubeObject): string {
    return `${obj.kind} ${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ""}${obj.metadata.name}`;
}

/** Pulumi's Kubernetes provider names its server-side-apply field manager `pulumi-kubernetes-<8 random hex>`. */
export function pulumiFieldManager(seed: string): string {
    return `pulumi-kubernetes-${crypto.createHash("sha256").update(seed).digest("hex").slice(0, 8)}`;
}

function outcome(id: string, r: ApiResponse): Outcome {
    const ok = r.status >= 200 && r.status < 300;
    const message = ok ? undefined : (r.body?.message ?? JSON.stringify(r.body));
    return { id, status: r.status, message, warnings: r.warnings };
}

export interface ApplyOptions {
    dryRun: boolean;
    fieldManager: string;
}

/** Server-side apply with strict field validation: unknown or duplicate fields are errors, not silently dropped. */
export async function serverSideApply(
    server: ApiServer,
    discovery: Discovery,
    obj: KubeObject,
    opts: ApplyOptions,
): Promise<Outcome> {
    const query = new URLSearchParams({ fieldManager: opts.fieldManager, fieldValidation: "Strict" });
    if (opts.dryRun) query.set("dryRun", "All");
    let p: string;
    try {
        p = discovery.path(obj);
    } catch (e) {
        return { id: objectId(obj), status: 0, message: (e as Error).message, warnings: [] };
    }
    const r = await server.request("PATCH", `${p}?${query}`, obj, "application/apply-patch+yaml");
    return outcome(objectId(obj), r);
}

/** The pod template of a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), if it has one. */
export function podTemplateOf(obj: KubeObject): { metadata?: any; spec: any } | undefined {
    if (obj.kind === "CronJob") return obj.spec?.jobTemplate?.spec?.template;
    if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind)) return obj.spec?.template;
    return undefined;
}

/** Dry-run creates a workload's pod template as a Pod, so Pod Security is enforced (workloads only get warnings). */
export async function admitPodTemplate(server: ApiServer, obj: KubeObject): Promise<Outcome | undefined> {
    const template = podTemplateOf(obj);
    if (!template) return undefined;
    const namespace = obj.metadata.namespace ?? "default";
    // The StatefulSet controller adds a volume per claim template to each pod it makes (claim `<template>-<set>-<n>`).
    const claims: any[] = obj.kind === "StatefulSet" ? (obj.spec?.volumeClaimTemplates ?? []) : [];
    const volumes = [
        ...(template.spec.volumes ?? []),
        ...claims
            .filter((c) => !(template.spec.volumes ?? []).some((v: any) => v.name === c.metadata.name))
            .map((c) => ({
                name: c.metadata.name,
                persistentVolumeClaim: { claimName: `${c.metadata.name}-${obj.metadata.name}-0` },
            })),
    ];
    const spec = volumes.length > 0 ? { ...template.spec, volumes } : template.spec;
    const pod = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { ...(template.metadata ?? {}), name: `${obj.metadata.name}-template`, namespace },
        spec,
    };
    const r = await server.request(
        "POST",
        `/api/v1/namespaces/${namespace}/pods?dryRun=All&fieldValidation=Strict`,
        pod,
    );
    return outcome(`Pod template of ${objectId(obj)}`, r);
}

/** Waits until each CRD reports Established (its API is served), then refreshes discovery. */
export async function waitForCrds(server: ApiServer, discovery: Discovery, names: string[], seconds = 120) {
    const deadline = Date.now() + seconds * 1000;
    for (const name of names) {
        for (;;) {
            const r = await server.request("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
            const established = (r.body?.status?.conditions ?? []).some(
                (c: any) => c.type === "Established" && c.status === "True",
            );
            if (established) break;
            if (Date.now() > deadline)
                throw new Error(`CRD ${name} not Established after ${seconds} s\n${server.logs()}`);
            await new Promise((res) => setTimeout(res, 250));
        }
    }
    await discovery.refresh();
}

/** Every object of a multi-document YAML text (empty documents dropped). */
export function parseObjects(text: string): KubeObject[] {
    return parseAllDocuments(text, { version: "1.1" }) // as kubectl and Helm read YAML: 0644 is octal
        .map((d) => d.toJS())
        .filter((o): o is KubeObject => !!o && typeof o === "object" && !!o.kind);
}

/**
 * Every object the server stores, of every resource it can list, each at its group's preferred version (a resource
 * served at several versions is listed once), with `apiVersion` and `kind` filled in as a list's items lack them.
 */
export async function listAll(server: ApiServer): Promise<KubeObject[]> {
    const groupVersions = ["v1"];
    const apis = await server.request("GET", "/apis");
    for (const g of apis.body.groups ?? []) groupVersions.push(g.preferredVersion.groupVersion);
    const out: KubeObject[] = [];
    for (const gv of groupVersions) {
        const base = gv === "v1" ? "/api/v1" : `/apis/${gv}`;
        const r = await server.request("GET", base);
        for (const res of r.body?.resources ?? []) {
            if (res.name.includes("/") || !(res.verbs ?? []).includes("list")) continue;
            let list = await server.request("GET", `${base}/${res.name}`);
            // A CRD's storage answers 429 for a moment after it is created: wait as the server asks, a minute at most.
            for (let i = 0; list.status === 429 && i < 60; i++) {
                await new Promise((r) => setTimeout(r, 1000 * (list.body?.details?.retryAfterSeconds ?? 1)));
                list = await server.request("GET", `${base}/${res.name}`);
            }
            if (list.status !== 200)
                throw new Error(`GET ${base}/${res.name}: ${list.status} ${JSON.stringify(list.body)}`);
            for (const item of list.body.items ?? []) out.push({ ...item, apiVersion: gv, kind: res.kind });
        }
    }
    return out;
}
