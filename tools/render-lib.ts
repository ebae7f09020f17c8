/**
 * Turns a mock run of the program (tools/harness.ts runStack) into what Kubernetes, Helm and Docker would receive:
 * every Kubernetes object as a manifest, every Helm release with its merged values, every image with its build
 * settings. Secret values are redacted everywhere. Used by `npm run render`, the schema tests, the linters
 * (scripts/lint-manifests.sh) and the footprint report.
 */
import * as fs from "fs";
import * as path from "path";
import deepmerge from "deepmerge";
import { parse, stringify } from "yaml";
import { reveal, ROOT, SECRET_SIG, SECRET_SIG_KEY, StackName, StackRun } from "./harness";

/** What every secret value (Pulumi secret, Secret data) becomes in rendered output. */
export const REDACTED = "<redacted>";
/** Base64 of REDACTED: Secret `data` must stay base64 to validate. */
export const REDACTED_B64 = Buffer.from(REDACTED).toString("base64");
/** Pulumi's Kubernetes provider auto-names `<resource name>-<8 random [a-z0-9]>`; this stands for the suffix. */
export const AUTONAME_SUFFIX = "xxxxxxxx";

/** Pulumi's serialized asset signature (FileAsset/StringAsset in `valueYamlFiles`). */
const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";

export interface ObjectMeta {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
}

export interface K8sObject {
    apiVersion: string;
    kind: string;
    metadata: ObjectMeta;
    [key: string]: any;
}

export interface RenderedObject {
    /** `<type>::<name>` of the Pulumi resource that declares it. */
    resource: string;
    object: K8sObject;
    /** True for `*Patch` resources: partial objects, written but not schema-validated. */
    patch: boolean;
}

export interface HelmRelease {
    resource: string;
    type: string;
    name: string;
    namespace?: string;
    chart: string;
    repo?: string;
    version?: string;
    /** Values files then `values`, merged the way Helm does (maps deep, lists replaced); secrets redacted. */
    values: Record<string, any>;
}

export interface ImageBuild {
    resource: string;
    imageName: string;
    context?: string;
    dockerfile?: string;
    target?: string;
    platform?: string;
    args: Record<string, unknown>;
    cacheFrom?: unknown;
    builderVersion?: string;
    skipPush?: boolean;
    registry?: string;
}

export interface Rendered {
    stack: StackName;
    objects: RenderedObject[];
    releases: HelmRelease[];
    images: ImageBuild[];
}

/** Replaces every Pulumi secret (at any depth) with REDACTED. */
export function redact<T = any>(value: unknown): T {
    if (Array.isArray(value)) return value.map(redact) as any;
    if (value && typeof value === "object") {
        if ((value as any)[SECRET_SIG_KEY] === SECRET_SIG) return REDACTED as any;
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)])) as any;
    }
    return value as T;
}

/**
 * `kubernetes:<group>/<version>:<Kind>` -> apiVersion and kind; `core` is the legacy group (`v1`). Undefined for
 * Kubernetes-provider types that are not one object (Helm releases, yaml/kustomize groups, providers).
 */
export function apiVersionKind(type: string): { apiVersion: string; kind: string } | undefined {
    const m = /^kubernetes:([^:]+)\/([^/:]+):([A-Za-z0-9]+)$/.exec(type);
    if (!m || m[1] === "helm.sh" || m[1] === "yaml" || m[1] === "kustomize") return undefined;
    const [, group, version, kind] = m;
    return { apiVersion: group === "core" ? version : `${group}/${version}`, kind };
}

/** The manifest a Kubernetes resource's inputs stand for: apiVersion/kind set, auto-name filled, secrets redacted. */
export function toObject(type: string, name: string, inputs: any): { object: K8sObject; patch: boolean } {
    const gvk = apiVersionKind(type);
    if (!gvk) throw new Error(`${type} (${name}) is not a Kubernetes object type`);
    const patch = gvk.kind.endsWith("Patch");
    const kind = patch ? gvk.kind.slice(0, -"Patch".length) : gvk.kind;
    const object: K8sObject = redact({ ...inputs, apiVersion: gvk.apiVersion, kind });
    const metadata = { ...(object.metadata ?? {}) } as ObjectMeta;
    if (metadata.name === undefined && !patch) metadata.name = `${name}-${AUTONAME_SUFFIX}`;
    object.metadata = metadata;
    if (kind === "Secret" && gvk.apiVersion === "v1") {
        // Secret payloads are secret whether or not the program wrapped them.
        for (const [field, placeholder] of [
            ["data", REDACTED_B64],
            ["stringData", REDACTED],
        ] as const) {
            // Keys stay (they are names that pods reference); values go, even where the whole map was a secret.
            const payload = reveal(inputs?.[field]);
            if (payload)
                object[field] = Object.fromEntries(
                    Object.keys(payload).map((k) => [k, standIn(reveal(inputs?.type), k, field) ?? placeholder]),
                );
        }
    }
    return { object, patch };
}

/**
 * A redacted Secret value the API server parses gets a syntactically valid stand-in instead of the placeholder, so a
 * real server still checks the rest: a registry pull secret's `.dockerconfigjson` must be JSON with `auths`.
 */
export function standIn(type: unknown, key: string, field: "data" | "stringData"): string | undefined {
    if (type !== "kubernetes.io/dockerconfigjson" || key !== ".dockerconfigjson") return undefined;
    const json = JSON.stringify({ auths: { [REDACTED]: { auth: REDACTED_B64 } } });
    return field === "data" ? Buffer.from(json).toString("base64") : json;
}

/** Helm's merge: maps merge deeply, lists and scalars from the later source replace the earlier. */
export function helmMerge(...sources: Record<string, any>[]): Record<string, any> {
    return deepmerge.all(sources.filter(Boolean), { arrayMerge: (_target, source) => source }) as Record<string, any>;
}

/** A values file input: a serialized FileAsset (path relative to the project root) or StringAsset. */
function readValuesAsset(asset: any): Record<string, any> {
    // Assets carry the same signature key as secrets, with their own value.
    if (asset?.[SECRET_SIG_KEY] !== ASSET_SIG)
        throw new Error(`unsupported values file input ${JSON.stringify(asset)}`);
    if (typeof asset.text === "string") return parse(asset.text) ?? {};
    if (typeof asset.path === "string") return parse(fs.readFileSync(path.resolve(ROOT, asset.path), "utf8")) ?? {};
    throw new Error(`values asset without path or text: ${JSON.stringify(asset)}`);
}

function releaseOf(r: StackRun["resources"][number]): HelmRelease | undefined {
    const resource = `${r.type}::${r.name}`;
    const i = r.inputs ?? {};
    switch (r.type) {
        case "kubernetes:helm.sh/v3:Release":
        case "kubernetes:helm.sh/v4:Chart": {
            const files = (i.valueYamlFiles ?? []).map(readValuesAsset);
            return {
                resource,
                type: r.type,
                name: i.name ?? `${r.name}-${AUTONAME_SUFFIX}`,
                namespace: i.namespace,
                chart: i.chart,
                repo: i.repositoryOpts?.repo,
                version: i.version,
                values: redact(helmMerge(...files, i.values ?? {})),
            };
        }
        case "kubernetes-cert-manager:index:CertManager": {
            // As the component builds its Release (pulumi-go-helmbase InitDefaults): each of its typed args that is
            // set becomes a top-level chart value, replacing the same key of helmOptions.values whole.
            const { helmOptions = {}, ...typed } = i;
            const chartValues = Object.fromEntries(
                Object.entries(typed).filter(([, v]) => v !== undefined && v !== null),
            );
            return {
                resource,
                type: r.type,
                name: helmOptions.name ?? r.name,
                namespace: helmOptions.namespace,
                chart: helmOptions.chart ?? "cert-manager",
                repo: helmOptions.repositoryOpts?.repo,
                version: helmOptions.version,
                values: redact({ ...(helmOptions.values ?? {}), ...chartValues }),
            };
        }
        default:
            return undefined;
    }
}

function imageOf(r: StackRun["resources"][number]): ImageBuild | undefined {
    if (r.type !== "docker:index/image:Image") return undefined;
    const i = redact(r.inputs ?? {});
    const b = i.build ?? {};
    return {
        resource: `${r.type}::${r.name}`,
        imageName: i.imageName,
        context: b.context,
        dockerfile: b.dockerfile,
        target: b.target,
        platform: b.platform,
        args: b.args ?? {},
        cacheFrom: b.cacheFrom,
        builderVersion: b.builderVersion,
        skipPush: i.skipPush,
        registry: i.registry?.server,
    };
}

/** Every Kubernetes object, Helm release and image build a stack declares. */
export function render(run: StackRun): Rendered {
    const objects: RenderedObject[] = [];
    const releases: HelmRelease[] = [];
    const images: ImageBuild[] = [];
    for (const r of run.resources) {
        const release = releaseOf(r);
        if (release) releases.push(release);
        const image = imageOf(r);
        if (image) images.push(image);
        if (r.custom && apiVersionKind(r.type)) {
            objects.push({ resource: `${r.type}::${r.name}`, ...toObject(r.type, r.name, r.inputs) });
        }
    }
    return { stack: run.stack, objects, releases, images };
}

/** File name for one object: `<kind>[.<namespace>].<name>.yaml`, lower case. */
export function manifestFileName(o: K8sObject, patch = false): string {
    const parts = [o.kind + (patch ? "patch" : ""), o.metadata.namespace, o.metadata.name].filter(Boolean);
    return `${parts.join(".").toLowerCase()}.yaml`;
}

/**
 * Writes `<dir>/manifests/*.yaml` (one object each), `<dir>/helm-releases.yaml` and `<dir>/images.yaml`, replacing
 * what an earlier render left there. Returns the paths written.
 */
export function writeRendered(rendered: Rendered, dir: string): string[] {
    const manifests = path.join(dir, "manifests");
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(manifests, { recursive: true });
    const written: string[] = [];
    const write = (file: string, doc: unknown, header: string) => {
        fs.writeFileSync(file, `# ${header}\n${stringify(doc, { lineWidth: 0 })}`);
        written.push(file);
    };
    for (const { resource, object, patch } of rendered.objects) {
        const file = path.join(manifests, manifestFileName(object, patch));
        if (fs.existsSync(file)) throw new Error(`two objects render to ${file}; second from ${resource}`);
        write(file, object, `from ${resource}${patch ? " (patch: partial object)" : ""}`);
    }
    write(
        path.join(dir, "helm-releases.yaml"),
        rendered.releases,
        `Helm releases of stack ${rendered.stack}: values are ours merged (chart defaults not included)`,
    );
    write(path.join(dir, "images.yaml"), rendered.images, `image builds of stack ${rendered.stack}`);
    return written;
}
