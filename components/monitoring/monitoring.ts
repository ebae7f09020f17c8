import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { parse } from "yaml";
import { labels, resources, ResourceSpec, serviceHost } from "../../lib/k8s";
import { HelmCharts } from "../../lib/chart-values";
import { PORTS, SERVICES } from "../../lib/contracts";

/** The monitoring files: rules, dashboards, the StatsD mapping and the metrics catalogue. */
export const MONITORING_DIR = path.resolve(__dirname, "..", "..", "monitoring");
const RULES_DIR = path.join(MONITORING_DIR, "prometheus", "rules");
const DASHBOARDS_DIR = path.join(MONITORING_DIR, "grafana", "dashboards");

/** uid of the provisioned Prometheus datasource; every dashboard panel refers to it. */
export const PROMETHEUS_DATASOURCE_UID = "prometheus";

/** What the stack runs, as far as the rule files care. */
export interface MonitoredFeatures {
    readonly fingpt: boolean;
}

/**
 * Which rule file is loaded on which stack. Every file in monitoring/prometheus/rules/ must be listed: a new file
 * that is not would otherwise be silently ignored.
 */
export const RULE_FILES: Readonly<Record<string, (f: MonitoredFeatures) => boolean>> = {
    "pipeline.yaml": () => true,
    "fingpt.yaml": (f) => f.fingpt,
};

export interface RuleGroup {
    name: string;
    rules: Record<string, unknown>[];
}

/** The rule groups of every file that applies to the stack, read from monitoring/prometheus/rules/. */
export function loadRuleGroups(features: MonitoredFeatures): RuleGroup[] {
    // Spread into a local array: fs returns arrays of Node's realm, which Pulumi's serializer (instanceof Array)
    // does not recognise when the program runs in another realm (jest's VM).
    const files = [...fs.readdirSync(RULES_DIR)].filter((f) => f.endsWith(".yaml")).sort();
    const unknown = files.filter((f) => !(f in RULE_FILES));
    if (unknown.length > 0) {
        throw new Error(
            `monitoring/prometheus/rules/${unknown.join(", ")} not listed in RULE_FILES (components/monitoring/monitoring.ts); ` +
                `listed: ${Object.keys(RULE_FILES).join(", ")}`,
        );
    }
    return files
        .filter((f) => RULE_FILES[f](features))
        .flatMap((f) => {
            const doc = parse(fs.readFileSync(path.join(RULES_DIR, f), "utf8")) as { groups?: RuleGroup[] };
            if (!Array.isArray(doc?.groups)) throw new Error(`monitoring/prometheus/rules/${f} has no groups list`);
            return doc.groups;
        });
}

/** Dashboard files (monitoring/grafana/dashboards/*.json), each as its name and raw JSON text. */
export function dashboardFiles(): { file: string; json: string }[] {
    return [...fs.readdirSync(DASHBOARDS_DIR)]
        .filter((f) => f.endsWith(".json"))
        .sort()
        .map((file) => ({ file, json: fs.readFileSync(path.join(DASHBOARDS_DIR, file), "utf8") }));
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Pods of one namespace, kept by `keep` relabelings; `job` label as given, plus namespace/pod/app labels. */
function podJob(jobName: string, namespace: string, keep: object[]): object {
    return {
        job_name: jobName,
        kubernetes_sd_configs: [{ role: "pod", namespaces: { names: [namespace] } }],
        relabel_configs: [
            ...keep,
            { source_labels: ["__meta_kubernetes_pod_phase"], regex: "Pending|Succeeded|Failed", action: "drop" },
            { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
            { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
            { source_labels: ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], target_label: "app" },
        ],
    };
}

/**
 * Every scrape job, written out (the chart's default jobs are off). Service discovery is limited to the stack's
 * namespaces; the only cluster-scoped job reads kubelet volume stats and keeps those of the stack's namespaces.
 */
export function scrapeConfigs(appNamespace: string, monitoringNamespace: string): object[] {
    const owned = [appNamespace, monitoringNamespace].join("|");
    return [
        { job_name: "prometheus", static_configs: [{ targets: [`localhost:${PORTS.prometheus}`] }] },
        // Our workloads and the Redis exporter: pods annotated prometheus.io/scrape, job = app.kubernetes.io/name.
        podJob("kubernetes-pods", appNamespace, [
            {
                source_labels: ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                regex: "true",
                action: "keep",
            },
            // CloudNativePG instances are scraped by the job the Postgres component hands over (extraScrapeJobs).
            { source_labels: ["__meta_kubernetes_pod_label_cnpg_io_cluster"], regex: ".+", action: "drop" },
            {
                source_labels: ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                regex: "(.+)",
                target_label: "__metrics_path__",
            },
            {
                source_labels: ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                regex: "([^:]+)(?::\\d+)?;(\\d+)",
                replacement: "$1:$2",
                target_label: "__address__",
            },
            { source_labels: ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], target_label: "job" },
        ]),
        {
            job_name: "statsd-exporter",
            static_configs: [
                { targets: [`${serviceHost(SERVICES.statsdExporter, monitoringNamespace)}:${PORTS.statsdMetrics}`] },
            ],
        },
        {
            job_name: "kube-state-metrics",
            static_configs: [
                {
                    targets: [
                        `${serviceHost(SERVICES.kubeStateMetrics, monitoringNamespace)}:${PORTS.kubeStateMetrics}`,
                    ],
                },
            ],
        },
        {
            // Each kubelet's own /metrics (the node role's address: the node's InternalIP and kubelet port), with
            // Prometheus's token: the kubelet asks the API server whether it may `get nodes/metrics`, which the chart's
            // ClusterRole grants. Never through the API server's node proxy: that needs `nodes/proxy`, which also
            // reaches a kubelet's exec and attach. The kubelets' serving certificates are their own, self-signed on
            // kind and minikube, so the certificate is not verified (docs/decisions.md).
            job_name: "kubelet",
            scheme: "https",
            tls_config: { insecure_skip_verify: true },
            authorization: { credentials_file: `${SA_DIR}/token` },
            kubernetes_sd_configs: [{ role: "node" }],
            relabel_configs: [{ source_labels: ["__meta_kubernetes_node_name"], target_label: "node" }],
            metric_relabel_configs: [
                { source_labels: ["__name__"], regex: "kubelet_volume_stats_.+_bytes", action: "keep" },
                { source_labels: ["namespace"], regex: owned, action: "keep" },
            ],
        },
    ];
}

export interface MonitoringArgs {
    /** The stack's Helm charts (stack config `chartRepository`). */
    charts: HelmCharts;
    /** Namespace of Prometheus, Grafana and the StatsD exporter. */
    namespace: pulumi.Input<string>;
    /** The pipeline's namespace: the only one whose pods are scraped. */
    appNamespace: pulumi.Input<string>;
    /** Secret with `admin-user` and `admin-password` in `namespace` (components/platform/secrets.ts). */
    grafanaAdminSecretName: pulumi.Input<string>;
    /** How long Prometheus keeps samples, e.g. "15d". */
    retention: string;
    /** Size of the Prometheus TSDB volume, e.g. "8Gi". */
    storageSize: string;
    /** CPU and memory of the Prometheus server container. */
    serverResources: ResourceSpec;
    /** StorageClass of the Prometheus and Alertmanager volumes; undefined uses the cluster default. */
    storageClass?: string;
    /** Features of the stack that decide which alert rules load. */
    features: MonitoredFeatures;
    /** Scrape jobs handed over by the components that own an exporter (e.g. Postgres' CloudNativePG job). */
    extraScrapeJobs?: pulumi.Input<Record<string, unknown>>[];
}

/**
 * Prometheus (with Alertmanager and kube-state-metrics), Grafana and the StatsD exporter for Airflow, configured
 * from the files in monitoring/: alert rules, dashboards (as ConfigMaps for Grafana's sidecar) and the StatsD mapping.
 */
export class Monitoring extends pulumi.ComponentResource {
    /** In-cluster URL of the Prometheus server (the Grafana datasource). */
    public readonly prometheusUrl: pulumi.Output<string>;
    /** Host and UDP port Airflow sends StatsD to (AIRFLOW__METRICS__STATSD_HOST / _PORT). */
    public readonly statsdHost: pulumi.Output<string>;
    public readonly statsdPort: number;
    /** Grafana's Service and port (the edge's backend). */
    public readonly grafanaService: { readonly service: string; readonly port: number };

    constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:monitoring:Monitoring", name, {}, opts);
        const parent = { parent: this };
        const ns = pulumi.output(args.namespace);

        // The port written out, so the URL follows the contract rather than http's default.
        this.prometheusUrl = pulumi.interpolate`http://${serviceHost(SERVICES.prometheus, ns)}:${PORTS.prometheusService}`;
        this.statsdHost = serviceHost(SERVICES.statsdExporter, ns);
        this.statsdPort = PORTS.statsd;
        this.grafanaService = { service: SERVICES.grafana, port: PORTS.grafanaService };

        const statsd = args.charts.release(
            `${name}-statsd-exporter`,
            "statsdExporter",
            {
                namespace: ns,
                values: {
                    statsd: {
                        mappingConfig: fs.readFileSync(path.join(MONITORING_DIR, "statsd", "mapping.yaml"), "utf8"),
                    },
                },
            },
            parent,
        );

        const storageClass = args.storageClass ? { storageClass: args.storageClass } : {};
        const prometheus = args.charts.release(
            `${name}-prometheus`,
            "prometheus",
            {
                namespace: ns,
                values: pulumi
                    .all([args.appNamespace, ns, pulumi.all(args.extraScrapeJobs ?? [])])
                    .apply(([app, mon, extra]) => ({
                        server: {
                            retention: args.retention,
                            resources: resources(args.serverResources),
                            persistentVolume: { size: args.storageSize, ...storageClass },
                        },
                        alertmanager: { persistence: storageClass },
                        "kube-state-metrics": { namespaces: [app, mon].join(",") },
                        serverFiles: {
                            "alerting_rules.yml": { groups: loadRuleGroups(args.features) },
                            "prometheus.yml": { scrape_configs: [...scrapeConfigs(app, mon), ...extra] },
                        },
                    })),
            },
            { ...parent, dependsOn: [statsd] },
        );

        const dashboards = dashboardFiles().map(
            ({ file, json }) =>
                new k8s.core.v1.ConfigMap(
                    `${name}-dashboard-${file.replace(/\.json$/, "")}`,
                    {
                        metadata: {
                            name: `grafana-dashboard-${file.replace(/\.json$/, "")}`,
                            namespace: ns,
                            labels: { ...labels("grafana", "dashboards"), grafana_dashboard: "1" },
                        },
                        data: { [file]: json },
                    },
                    parent,
                ),
        );

        args.charts.release(
            `${name}-grafana`,
            "grafana",
            {
                namespace: ns,
                values: {
                    admin: { existingSecret: args.grafanaAdminSecretName },
                    datasources: {
                        "datasources.yaml": {
                            apiVersion: 1,
                            datasources: [
                                {
                                    name: "Prometheus",
                                    uid: PROMETHEUS_DATASOURCE_UID,
                                    type: "prometheus",
                                    access: "proxy",
                                    url: this.prometheusUrl,
                                    isDefault: true,
                                    editable: false,
                                    jsonData: { timeInterval: "30s" },
                                },
                            ],
                        },
                    },
                },
            },
            { ...parent, dependsOn: [prometheus, ...dashboards] },
        );

        this.registerOutputs({
            prometheusUrl: this.prometheusUrl,
            statsdHost: this.statsdHost,
            statsdPort: this.statsdPort,
            grafanaService: this.grafanaService,
        });
    }
}
