/**
 * Every Helm chart the stack installs, pinned in one place: name, repository and version.
 * Bump a version here and the release picks it up on the next `pulumi up`.
 */
export interface ChartRef {
    readonly chart: string;
    readonly repo: string;
    readonly version: string;
}

/**
 * Where the Helm charts come from (stack config `chartRepository`): each chart's public repository, a folder of the
 * pinned archives, a chart repository mirror, or an OCI registry.
 */
export type ChartOrigin =
    | { readonly kind: "public" }
    | { readonly kind: "folder"; readonly path: string }
    | { readonly kind: "repository"; readonly url: string }
    | { readonly kind: "oci"; readonly url: string };

export const CHARTS = {
    /** CloudNativePG operator (CRDs + controller); Bitnami's Postgres images are no longer published. */
    cnpgOperator: { chart: "cloudnative-pg", repo: "https://cloudnative-pg.github.io/charts", version: "0.29.0" },
    /** One CloudNativePG Cluster with databases and roles. */
    cnpgCluster: { chart: "cluster", repo: "https://cloudnative-pg.github.io/charts", version: "0.8.1" },
    /**
     * Redis on the official redis image. The chart's 1.3.x line is its Redis 7.4 line (1.3.8 = app 7.4.6, per its
     * RELEASENOTES.md); 2.x targets Redis 8, and the stack runs redis:7.
     */
    redis: { chart: "redis", repo: "https://groundhog2k.github.io/helm-charts/", version: "1.3.8" },
    prometheus: { chart: "prometheus", repo: "https://prometheus-community.github.io/helm-charts", version: "29.27.0" },
    /** Airflow StatsD -> Prometheus; 0.15.0 ships statsd_exporter v0.28.0 (the version monitoring/statsd is tested with). */
    statsdExporter: {
        chart: "prometheus-statsd-exporter",
        repo: "https://prometheus-community.github.io/helm-charts",
        version: "0.15.0",
    },
    /** The Grafana chart moved to grafana-community in January 2026. */
    grafana: { chart: "grafana", repo: "https://grafana-community.github.io/helm-charts", version: "12.11.1" },
    nvidiaDevicePlugin: {
        chart: "nvidia-device-plugin",
        repo: "https://nvidia.github.io/k8s-device-plugin",
        version: "0.20.0",
    },
    certManager: { chart: "cert-manager", repo: "https://charts.jetstack.io", version: "v1.19.1" },
    /**
     * CloudNativePG's Barman Cloud plugin (app v0.13.0): WAL archiving, base backups and recovery through object
     * storage, the successor of the operator's deprecated in-tree `barmanObjectStore`. Needs cert-manager.
     */
    /** KEDA: event-driven autoscaling (the Celery workers by Redis queue depth). */
    keda: { chart: "keda", repo: "https://kedacore.github.io/charts", version: "2.20.2" },
    barmanCloud: { chart: "plugin-barman-cloud", repo: "https://cloudnative-pg.github.io/charts", version: "0.7.0" },
} as const satisfies Record<string, ChartRef>;

/** The archive `helm package` writes for a chart: `<chart>-<version>.tgz`. */
export function chartArchiveName(ref: ChartRef): string {
    return `${ref.chart}-${ref.version}.tgz`;
}
