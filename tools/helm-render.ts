/**
 * Renders every Helm release a stack declares with the real `helm template`, from the pinned chart archives in
 * ../shared/charts, at the release's namespace, with exactly the values the program passes (tools/render-lib.ts reads
 * them from the mock run, so computed values count). Used by the chart tests (test/helm-charts.test.ts), by
 * `npm run render` (out/<stack>/charts/<release>.yaml) and by the API server tier, which applies the rendered objects.
 *
 * Helm never touches the network here: its proxy points at a closed loopback port and its cache, config and data
 * folders are private to the process.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseAllDocuments, stringify, Tags } from "yaml";
import { runStack, StackName } from "./harness";
import { SHARED_DATA, TOOLS_BIN } from "./stacks";
import { HelmRelease, K8sObject, REDACTED, render, Rendered } from "./render-lib";
import { TARGET_KUBERNETES } from "./manifest-validation";

/** Where the pinned chart archives live (test data shared by the team, never copied into the project). */
export const CHART_DIR = SHARED_DATA.charts;

/** Helm binary: $HELM, else the one scripts/tools.sh builds. */
export function helmBinary(): string {
    const candidates = [process.env.HELM, path.join(TOOLS_BIN, "helm")].filter((p): p is string => !!p);
    const found = candidates.find((p) => fs.existsSync(p));
    if (!found)
        throw new Error(`helm not found at ${candidates.join(" or ")}: run scripts/tools.sh (builds helm v3.19.5)`);
    return found;
}

/**
 * API versions the cluster serves beyond the built-in ones when the charts are installed, so capabilities-dependent
 * templates render as they will there: cert-manager's and CloudNativePG's CRDs come with the stack (or, for
 * cert-manager, with the cluster when the stack does not install it; the stack's ClusterIssuers need it either way).
 * The Prometheus Operator's monitoring.coreos.com is absent: the stack does not install it.
 */
export const STACK_API_VERSIONS = ["cert-manager.io/v1", "acme.cert-manager.io/v1", "postgresql.cnpg.io/v1"] as const;

/** What a secret value becomes in the values helm renders with: a plain string any string-typed field accepts. */
export const SECRET_STAND_IN = "stand-in-for-a-secret-value";

export interface RenderedChartObject {
    /** The chart template it came from (`# Source:` line), such as `cluster/templates/cluster.yaml`. */
    source: string;
    object: K8sObject;
}

/** One release rendered by `helm template`. */
export interface ChartRender {
    /** `<type>::<name>` of the Pulumi resource (Release or CertManager component). */
    resource: string;
    /** Helm release name. */
    release: string;
    namespace: string;
    chart: string;
    version: string;
    /** The archive rendered. */
    archive: string;
    /** The values passed to helm (the program's, secrets replaced by SECRET_STAND_IN). */
    values: Record<string, any>;
    /**
     * Every object of the release in helm's install order, hooks included, test hooks excluded. Objects without a
     * namespace of their own that are namespaced get the release namespace, as `helm install` applies them; null
     * fields are dropped, as the API server drops them.
     */
    objects: K8sObject[];
    /** The CustomResourceDefinitions among `objects`: the API server tier installs them before any custom resource. */
    crds: K8sObject[];
    /** `objects` with the template each came from. */
    sources: RenderedChartObject[];
}

/** `helm template` failed: the chart refused the values (schema, `required`, `fail`) or a template broke. */
export class HelmRenderError extends Error {
    constructor(
        public readonly release: string,
        public readonly stderr: string,
    ) {
        super(`helm template of release ${release} failed: ${stderr.trim()}`);
    }
}

/** The archive of a pinned chart: `<chart>-<version>.tgz` in CHART_DIR; throws naming what is there otherwise. */
export function chartArchive(chart: string, version: string): string {
    const file = path.join(CHART_DIR, `${chart}-${version}.tgz`);
    if (!fs.existsSync(file)) {
        const have = fs.existsSync(CHART_DIR) ? fs.readdirSync(CHART_DIR).filter((f) => f.endsWith(".tgz")) : [];
        throw new Error(
            `chart ${chart} ${version} has no archive at ${file}; archives there: ${have.join(", ") || "(none)"}`,
        );
    }
    return file;
}

let helmHome: string | undefined;
/** Private HELM_* folders and a closed proxy: helm reads nothing from the user's setup and reaches no network. */
function helmEnv(): NodeJS.ProcessEnv {
    helmHome ??= fs.mkdtempSync(path.join(os.tmpdir(), "fx-helm-"));
    const closed = "http://127.0.0.1:9";
    return {
        PATH: process.env.PATH,
        HOME: helmHome,
        HELM_CACHE_HOME: path.join(helmHome, "cache"),
        HELM_CONFIG_HOME: path.join(helmHome, "config"),
        HELM_DATA_HOME: path.join(helmHome, "data"),
        HTTP_PROXY: closed,
        HTTPS_PROXY: closed,
        http_proxy: closed,
        https_proxy: closed,
        NO_PROXY: "",
    };
}

/** The YAML 1.1 tags without `!!timestamp`. */
function withoutTimestamps(tags: Tags): Tags {
    return tags.filter((t) => t !== "timestamp" && (typeof t !== "object" || t.tag !== "tag:yaml.org,2002:timestamp"));
}

/** Replaces the redacted secrets of rendered values with SECRET_STAND_IN. */
function standIns(value: unknown): any {
    if (value === REDACTED) return SECRET_STAND_IN;
    if (Array.isArray(value)) return value.map(standIns);
    if (value && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, standIns(v)]));
    }
    return value;
}

/** The object without its null fields: the API server treats a null field as absent (Helm charts print many). */
export function withoutNulls<T>(value: T): T {
    if (Array.isArray(value)) return value.map(withoutNulls) as T;
    if (value && typeof value === "object") {
        return Object.fromEntries(
            Object.entries(value)
                .filter(([, v]) => v !== null)
                .map(([k, v]) => [k, withoutNulls(v)]),
        ) as T;
    }
    return value;
}

/** Kinds that live in a namespace (a rendered object without metadata.namespace lands in the release's). */
const CLUSTER_SCOPED = new Set([
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "APIService",
    "RuntimeClass",
    "IngressClass",
    "ClusterIssuer",
    "CSIDriver",
    "NodeFeatureRule",
    "NodeFeatureGroup",
    "ClusterImageCatalog",
]);

export function isClusterScoped(o: K8sObject): boolean {
    return CLUSTER_SCOPED.has(o.kind);
}

export interface HelmTemplateOptions {
    /** Extra API versions the cluster serves (default STACK_API_VERSIONS). */
    apiVersions?: readonly string[];
}

/** Runs `helm template` for one release and parses what it prints. */
export function helmTemplate(release: HelmRelease, options: HelmTemplateOptions = {}): ChartRender {
    if (!release.version) throw new Error(`release ${release.name} (${release.resource}) pins no chart version`);
    if (!release.namespace) throw new Error(`release ${release.name} (${release.resource}) has no namespace`);
    const archive = chartArchive(release.chart, release.version);
    const values = standIns(release.values);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-helm-values-"));
    const valuesFile = path.join(dir, "values.yaml");
    fs.writeFileSync(valuesFile, stringify(values, { lineWidth: 0 }));
    const args = [
        "template",
        release.name,
        archive,
        "--namespace",
        release.namespace,
        "--values",
        valuesFile,
        "--kube-version",
        TARGET_KUBERNETES,
        ...(options.apiVersions ?? STACK_API_VERSIONS).flatMap((v) => ["--api-versions", v]),
        // CRDs in a chart's crds/ folder are installed by `helm install` too.
        "--include-crds",
        // `helm test` pods are not installed by `helm install` (nor by the Release resource).
        "--skip-tests",
    ];
    let stdout: string;
    try {
        stdout = execFileSync(helmBinary(), args, {
            env: helmEnv(),
            encoding: "utf8",
            maxBuffer: 256 * 1024 * 1024,
            stdio: ["ignore", "pipe", "pipe"],
        });
    } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new HelmRenderError(release.name, err.stderr || err.message);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
    const sources: RenderedChartObject[] = [];
    // YAML 1.1, as Helm and the API server's decoder read it: `defaultMode: 0555` is octal there, 555 in YAML 1.2.
    // Timestamps stay strings, as Go's YAML v2 decoder keeps them for untyped values (an unquoted
    // `targetTime: 2026-11-30T14:05:00Z` reaches the API server as that string).
    for (const doc of parseAllDocuments(stdout, { version: "1.1", customTags: withoutTimestamps })) {
        if (doc.errors.length) {
            throw new Error(`release ${release.name}: helm printed invalid YAML: ${doc.errors[0].message}`);
        }
        const parsed = doc.toJS({ maxAliasCount: -1 }) as K8sObject | null;
        if (!parsed) continue;
        const object = withoutNulls(parsed);
        const comments = `${doc.commentBefore ?? ""}\n${(doc.contents as { commentBefore?: string } | null)?.commentBefore ?? ""}`;
        const source = /Source: (\S+)/.exec(comments)?.[1] ?? "(unknown template)";
        if (!isClusterScoped(object) && !object.metadata?.namespace) {
            object.metadata = { ...object.metadata, namespace: release.namespace };
        }
        sources.push({ source, object });
    }
    const objects = sources.map((s) => s.object);
    return {
        resource: release.resource,
        release: release.name,
        namespace: release.namespace,
        chart: release.chart,
        version: release.version,
        archive,
        values,
        objects,
        crds: objects.filter((o) => o.kind === "CustomResourceDefinition"),
        sources,
    };
}

/** Every release of a rendered stack through `helm template`, in the order the program declares them. */
export function renderCharts(rendered: Rendered, options: HelmTemplateOptions = {}): ChartRender[] {
    return rendered.releases.map((r) => helmTemplate(r, options));
}

/** The same from a stack name: runs the program under mocks first. */
export async function renderStackCharts(stack: StackName): Promise<ChartRender[]> {
    return renderCharts(render(await runStack(stack)));
}

/**
 * Writes `<dir>/charts/<release>.yaml` per release (all objects, CRDs first, each preceded by its template) and
 * returns the paths written.
 */
export function writeCharts(charts: readonly ChartRender[], dir: string): string[] {
    const out = path.join(dir, "charts");
    fs.rmSync(out, { recursive: true, force: true });
    fs.mkdirSync(out, { recursive: true });
    return charts.map((c) => {
        const file = path.join(out, `${c.release}.yaml`);
        const ordered = [
            ...c.sources.filter((s) => s.object.kind === "CustomResourceDefinition"),
            ...c.sources.filter((s) => s.object.kind !== "CustomResourceDefinition"),
        ];
        const header =
            `# Release ${c.release} in ${c.namespace}: chart ${c.chart} ${c.version} rendered by helm template with ` +
            `the program's values (secrets stand in). CustomResourceDefinitions first.\n`;
        fs.writeFileSync(
            file,
            header +
                ordered.map((s) => `---\n# Source: ${s.source}\n${stringify(s.object, { lineWidth: 0 })}`).join(""),
        );
        return file;
    });
}
