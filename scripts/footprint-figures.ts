/**
 * What a stack asks the cluster for: CPU, memory and GPU requested and limited, and storage, per component, from the
 * rendered objects (pod templates, PVCs) and from the merged values of each Helm release (CHART_RESOURCES says where
 * each chart keeps them). Written by scripts/footprint.ts to bench/results/footprint-<stack>.md; not asserted.
 */
import { HelmRelease, K8sObject, Rendered } from "../tools/render-lib";
import { podSpecs } from "../tools/manifest-validation";

/** Requests and limits in millicores, bytes and GPUs. */
export interface Amounts {
    cpuRequest: number;
    cpuLimit: number;
    memoryRequest: number;
    memoryLimit: number;
    gpu: number;
}

export interface ComponentFootprint {
    component: string;
    /** `object Kind/ns/name` or `release <name> (<chart>)`. */
    source: string;
    replicas: number;
    /** Per replica. */
    perReplica: Amounts;
    storage: number;
    /** Runs to completion (Job, CronJob): not in the steady-state total. */
    oneOff: boolean;
    /** Containers with no request or no limit for CPU or memory (the chart default applies, if any). */
    unset: string[];
}

const SUFFIX: Record<string, number> = {
    n: 1e-9,
    u: 1e-6,
    m: 1e-3,
    "": 1,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    E: 1e18,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    Pi: 2 ** 50,
    Ei: 2 ** 60,
};

/** A Kubernetes quantity ("250m", "1.5", "512Mi", "1e3") as a number of base units. */
export function parseQuantity(q: string | number): number {
    if (typeof q === "number") return q;
    const m = /^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(q.trim());
    if (!m) throw new Error(`'${q}' is not a Kubernetes quantity`);
    const [, num, exp, suffix] = m;
    return Number(num) * (exp !== undefined ? 10 ** Number(exp) : SUFFIX[suffix ?? ""]);
}

const zero = (): Amounts => ({ cpuRequest: 0, cpuLimit: 0, memoryRequest: 0, memoryLimit: 0, gpu: 0 });

function add(a: Amounts, b: Amounts, times = 1): Amounts {
    return {
        cpuRequest: a.cpuRequest + b.cpuRequest * times,
        cpuLimit: a.cpuLimit + b.cpuLimit * times,
        memoryRequest: a.memoryRequest + b.memoryRequest * times,
        memoryLimit: a.memoryLimit + b.memoryLimit * times,
        gpu: a.gpu + b.gpu * times,
    };
}

/** One container's `resources` as amounts; a missing request defaults to the limit, as Kubernetes does. */
function amountsOf(resources: any): { amounts: Amounts; unset: string[] } {
    const req = resources?.requests ?? {};
    const lim = resources?.limits ?? {};
    const unset = [
        ...((req.cpu ?? lim.cpu) ? [] : ["cpu request"]),
        ...(lim.cpu ? [] : ["cpu limit"]),
        ...((req.memory ?? lim.memory) ? [] : ["memory request"]),
        ...(lim.memory ? [] : ["memory limit"]),
    ];
    const q = (v: unknown) => (v === undefined ? 0 : parseQuantity(v as string));
    return {
        amounts: {
            cpuRequest: q(req.cpu ?? lim.cpu) * 1000,
            cpuLimit: q(lim.cpu) * 1000,
            memoryRequest: q(req.memory ?? lim.memory),
            memoryLimit: q(lim.memory),
            gpu: q(lim["nvidia.com/gpu"] ?? req["nvidia.com/gpu"]),
        },
        unset,
    };
}

/** A pod's effective amounts: containers summed, init containers counted by their maximum (they run one at a time). */
function podAmounts(spec: any): { amounts: Amounts; unset: string[] } {
    let amounts = zero();
    const unset: string[] = [];
    for (const c of spec.containers ?? []) {
        const a = amountsOf(c.resources);
        amounts = add(amounts, a.amounts);
        unset.push(...a.unset.map((u) => `${c.name}: ${u}`));
    }
    for (const c of spec.initContainers ?? []) {
        const { amounts: i } = amountsOf(c.resources);
        amounts = {
            cpuRequest: Math.max(amounts.cpuRequest, i.cpuRequest),
            cpuLimit: Math.max(amounts.cpuLimit, i.cpuLimit),
            memoryRequest: Math.max(amounts.memoryRequest, i.memoryRequest),
            memoryLimit: Math.max(amounts.memoryLimit, i.memoryLimit),
            gpu: Math.max(amounts.gpu, i.gpu),
        };
    }
    return { amounts, unset };
}

function objectFootprint(o: K8sObject): ComponentFootprint | undefined {
    const id = [o.kind, o.metadata.namespace, o.metadata.name].filter(Boolean).join("/");
    const component = o.metadata.labels?.["app.kubernetes.io/name"] ?? o.metadata.name;
    if (o.kind === "PersistentVolumeClaim") {
        const storage = parseQuantity(o.spec?.resources?.requests?.storage ?? 0);
        return {
            component,
            source: `object ${id}`,
            replicas: 1,
            perReplica: zero(),
            storage,
            oneOff: false,
            unset: [],
        };
    }
    const [pod] = podSpecs(o);
    if (!pod) return undefined;
    const { amounts, unset } = podAmounts(pod.spec ?? {});
    // DaemonSets: one pod per eligible node; counted once (one node on kind).
    const replicas = o.kind === "Deployment" || o.kind === "StatefulSet" ? (o.spec?.replicas ?? 1) : 1;
    const claims: any[] = o.kind === "StatefulSet" ? (o.spec?.volumeClaimTemplates ?? []) : [];
    const storage = claims.reduce((s, c) => s + parseQuantity(c.spec?.resources?.requests?.storage ?? 0), 0);
    return {
        component,
        source: `object ${id}`,
        replicas,
        perReplica: amounts,
        storage: storage * replicas,
        oneOff: o.kind === "Job" || o.kind === "CronJob",
        unset,
    };
}

/** Where one workload of a chart keeps its settings in the chart's values (dotted paths). */
export interface ChartWorkload {
    component: string;
    /** Containers of the pod, each a `resources` map path. */
    resources: string[];
    /** Containers that exist only when a flag is on, each a `resources` map path. */
    sidecars?: { resources: string; enabled: { path: string; default: boolean } }[];
    /** Replica count path and the chart's default when our values do not set it. */
    replicas?: { path: string; default: number };
    /** Enabled-flag path and the chart's default. */
    enabled?: { path: string; default: boolean };
    /** Storage size paths, each with the enabled flag it depends on (per replica). */
    storage?: { size: string; enabled?: { path: string; default: boolean } }[];
    oneOff?: boolean;
}

/** Per chart (by chart name): its workloads and where their resources live. The one place with per-chart knowledge. */
export const CHART_RESOURCES: Record<string, ChartWorkload[]> = {
    "cert-manager": [
        { component: "cert-manager", resources: ["resources"], replicas: { path: "replicaCount", default: 1 } },
        {
            component: "cert-manager-cainjector",
            resources: ["cainjector.resources"],
            replicas: { path: "cainjector.replicaCount", default: 1 },
            enabled: { path: "cainjector.enabled", default: true },
        },
        {
            component: "cert-manager-webhook",
            resources: ["webhook.resources"],
            replicas: { path: "webhook.replicaCount", default: 1 },
        },
        {
            component: "cert-manager-startupapicheck",
            resources: ["startupapicheck.resources"],
            enabled: { path: "startupapicheck.enabled", default: true },
            oneOff: true,
        },
    ],
    "plugin-barman-cloud": [
        { component: "barman-cloud", resources: ["resources"], replicas: { path: "replicaCount", default: 1 } },
    ],
    keda: [
        {
            component: "keda-operator",
            resources: ["resources.operator"],
            replicas: { path: "operator.replicaCount", default: 1 },
        },
        {
            component: "keda-metrics-apiserver",
            resources: ["resources.metricServer"],
            replicas: { path: "metricsServer.replicaCount", default: 1 },
        },
        {
            component: "keda-admission-webhooks",
            resources: ["resources.webhooks"],
            replicas: { path: "webhooks.replicaCount", default: 1 },
            enabled: { path: "webhooks.enabled", default: true },
        },
    ],
    "cloudnative-pg": [
        { component: "cnpg-operator", resources: ["resources"], replicas: { path: "replicaCount", default: 1 } },
    ],
    cluster: [
        {
            component: "postgres (CNPG instances)",
            resources: ["cluster.resources"],
            // The Barman Cloud plugin's sidecar runs in every instance pod when backups are on.
            sidecars: [
                {
                    resources: "backups.instanceSidecarConfiguration.resources",
                    enabled: { path: "backups.enabled", default: false },
                },
            ],
            replicas: { path: "cluster.instances", default: 3 },
            storage: [
                { size: "cluster.storage.size" },
                { size: "cluster.walStorage.size", enabled: { path: "cluster.walStorage.enabled", default: false } },
            ],
        },
    ],
    redis: [
        {
            component: "redis",
            resources: ["resources", "metrics.exporter.resources"],
            storage: [{ size: "storage.requestedSize" }],
        },
    ],
    "prometheus-statsd-exporter": [
        { component: "statsd-exporter", resources: ["resources"], replicas: { path: "replicaCount", default: 1 } },
    ],
    prometheus: [
        {
            component: "prometheus-server",
            resources: ["server.resources", "configmapReload.prometheus.resources"],
            replicas: { path: "server.replicaCount", default: 1 },
            storage: [
                {
                    size: "server.persistentVolume.size",
                    enabled: { path: "server.persistentVolume.enabled", default: true },
                },
            ],
        },
        {
            component: "alertmanager",
            resources: ["alertmanager.resources"],
            enabled: { path: "alertmanager.enabled", default: true },
            storage: [
                {
                    size: "alertmanager.persistence.size",
                    enabled: { path: "alertmanager.persistence.enabled", default: true },
                },
            ],
        },
        {
            component: "kube-state-metrics",
            resources: ["kube-state-metrics.resources"],
            enabled: { path: "kube-state-metrics.enabled", default: true },
        },
        {
            component: "prometheus-node-exporter (per node)",
            resources: ["prometheus-node-exporter.resources"],
            enabled: { path: "prometheus-node-exporter.enabled", default: true },
        },
        {
            component: "prometheus-pushgateway",
            resources: ["prometheus-pushgateway.resources"],
            enabled: { path: "prometheus-pushgateway.enabled", default: true },
        },
    ],
    grafana: [
        {
            component: "grafana",
            resources: ["resources", "sidecar.resources"],
            replicas: { path: "replicas", default: 1 },
            storage: [{ size: "persistence.size", enabled: { path: "persistence.enabled", default: false } }],
        },
    ],
    "nvidia-device-plugin": [{ component: "nvidia-device-plugin (per GPU node)", resources: ["resources"] }],
};

function at(values: any, dotted: string): any {
    return dotted.split(".").reduce((v, k) => (v === undefined || v === null ? undefined : v[k]), values);
}

function releaseFootprints(r: HelmRelease): ComponentFootprint[] {
    const workloads = CHART_RESOURCES[r.chart];
    const source = `release ${r.name} (${r.chart} ${r.version ?? ""})`.replace(" )", ")");
    if (!workloads) {
        return [
            {
                component: r.name,
                source,
                replicas: 0,
                perReplica: zero(),
                storage: 0,
                oneOff: false,
                unset: ["chart not in CHART_RESOURCES"],
            },
        ];
    }
    const flag = (f: { path: string; default: boolean } | undefined) =>
        f ? (at(r.values, f.path) ?? f.default) : true;
    return workloads
        .filter((w) => flag(w.enabled))
        .map((w) => {
            let perReplica = zero();
            const unset: string[] = [];
            const sidecars = (w.sidecars ?? []).filter((c) => flag(c.enabled)).map((c) => c.resources);
            for (const p of [...w.resources, ...sidecars]) {
                const a = amountsOf(at(r.values, p));
                perReplica = add(perReplica, a.amounts);
                unset.push(...a.unset.map((u) => `${p}: ${u}`));
            }
            const replicas = w.replicas ? Number(at(r.values, w.replicas.path) ?? w.replicas.default) : 1;
            const storage = (w.storage ?? [])
                .filter((s) => flag(s.enabled))
                .reduce((sum, s) => sum + parseQuantity(at(r.values, s.size) ?? 0), 0);
            return {
                component: w.component,
                source,
                replicas,
                perReplica,
                storage: storage * replicas,
                oneOff: !!w.oneOff,
                unset,
            };
        });
}

export interface Footprint {
    stack: string;
    components: ComponentFootprint[];
    /** Steady state: everything except one-off Jobs. */
    total: Amounts & { storage: number };
}

export function footprint(rendered: Rendered): Footprint {
    const components = [
        ...rendered.objects.filter((o) => !o.patch).flatMap((o) => objectFootprint(o.object) ?? []),
        ...rendered.releases.flatMap(releaseFootprints),
    ];
    let total = zero();
    let storage = 0;
    for (const c of components.filter((x) => !x.oneOff)) {
        total = add(total, c.perReplica, c.replicas);
        storage += c.storage;
    }
    return { stack: rendered.stack, components, total: { ...total, storage } };
}

const GiB = 2 ** 30;
const cpu = (m: number) => (m === 0 ? "-" : `${+(m / 1000).toFixed(3)}`);
const mem = (b: number) =>
    b === 0 ? "-" : b >= GiB ? `${+(b / GiB).toFixed(2)} GiB` : `${+(b / 2 ** 20).toFixed(0)} MiB`;

/** The report as Markdown. `aims` are lines comparing the totals with the stack's targets. */
export function footprintMarkdown(f: Footprint, aims: string[]): string {
    const rows = f.components.map((c) => {
        const t = add(zero(), c.perReplica, c.replicas);
        return `| ${c.component}${c.oneOff ? " (one-off)" : ""} | ${c.source} | ${c.replicas} | ${cpu(t.cpuRequest)} | ${cpu(t.cpuLimit)} | ${mem(t.memoryRequest)} | ${mem(t.memoryLimit)} | ${t.gpu || "-"} | ${mem(c.storage)} | ${c.unset.join("; ") || "-"} |`;
    });
    const t = f.total;
    return [
        `# Footprint of stack \`${f.stack}\``,
        "",
        "Generated by `npm run footprint -- " +
            f.stack +
            "` from the program under mocks (objects and merged Helm values; chart",
        "defaults that our values do not override are not known offline and show as unset). CPU in cores; totals are",
        "steady state (one-off Jobs excluded); DaemonSets counted for one node.",
        "",
        "| | CPU request | CPU limit | memory request | memory limit | GPU | storage |",
        "|---|---|---|---|---|---|---|",
        `| **total** | ${cpu(t.cpuRequest)} | ${cpu(t.cpuLimit)} | ${mem(t.memoryRequest)} | ${mem(t.memoryLimit)} | ${t.gpu} | ${mem(t.storage)} |`,
        "",
        ...aims.map((a) => `- ${a}`),
        "",
        "| component | source | replicas | CPU req | CPU lim | mem req | mem lim | GPU | storage | unset |",
        "|---|---|---|---|---|---|---|---|---|---|",
        ...rows,
        "",
    ].join("\n");
}
