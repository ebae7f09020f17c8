import { RELEASES } from "./contracts";

/**
 * Every Helm chart the stack installs, one entry each: chart, repository, pinned version, the release name (a
 * contract, lib/contracts.ts RELEASES) and the file of its static values under charts-values/ (none where the
 * component passes all its values). Bump a version here and the release picks it up on the next `pulumi up`;
 * `HelmCharts.release` (lib/chart-values.ts) is the one way a Release is made from an entry.
 */
export interface ChartRef {
    readonly chart: string;
    readonly repo: string;
    readonly version: string;
    readonly release: string;
    /** `charts-values/<values>.yaml`. */
    readonly values?: string;
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

const CNPG_REPO = "https://cloudnative-pg.github.io/charts";
const PROMETHEUS_COMMUNITY = "https://prometheus-community.github.io/helm-charts";

export const CHARTS = {
    /** CloudNativePG operator (CRDs + controller); Bitnami's Postgres images are no longer published. */
    cnpgOperator: {
        chart: "cloudnative-pg",
        repo: CNPG_REPO,
        version: "0.29.0",
        release: RELEASES.cnpgOperator,
        values: "cloudnative-pg",
    },
    /** One CloudNativePG Cluster with databases and roles. */
    cnpgCluster: {
        chart: "cluster",
        repo: CNPG_REPO,
        version: "0.8.1",
        release: RELEASES.postgresCluster,
        values: "cnpg-cluster",
    },
    /**
     * CloudNativePG's Barman Cloud plugin (app v0.13.0): WAL archiving, base backups and recovery through object
     * storage, the successor of the operator's deprecated in-tree `barmanObjectStore`. Needs cert-manager.
     */
    barmanCloud: {
        chart: "plugin-barman-cloud",
        repo: CNPG_REPO,
        version: "0.7.0",
        release: RELEASES.barmanCloud,
        values: "plugin-barman-cloud",
    },
    /**
     * Redis on the official redis image. The chart's 1.3.x line is its Redis 7.4 line (1.3.8 = app 7.4.6, per its
     * RELEASENOTES.md); 2.x targets Redis 8, and the stack runs redis:7.
     */
    redis: {
        chart: "redis",
        repo: "https://groundhog2k.github.io/helm-charts/",
        version: "1.3.8",
        release: RELEASES.redis,
        values: "redis",
    },
    prometheus: {
        chart: "prometheus",
        repo: PROMETHEUS_COMMUNITY,
        version: "29.27.0",
        release: RELEASES.prometheus,
        values: "prometheus",
    },
    /** Airflow StatsD -> Prometheus; 0.15.0 ships statsd_exporter v0.28.0 (the version monitoring/statsd is tested with). */
    statsdExporter: {
        chart: "prometheus-statsd-exporter",
        repo: PROMETHEUS_COMMUNITY,
        version: "0.15.0",
        release: RELEASES.statsdExporter,
        values: "prometheus-statsd-exporter",
    },
    /** The Grafana chart moved to grafana-community in January 2026. */
    grafana: {
        chart: "grafana",
        repo: "https://grafana-community.github.io/helm-charts",
        version: "12.11.1",
        release: RELEASES.grafana,
        values: "grafana",
    },
    nvidiaDevicePlugin: {
        chart: "nvidia-device-plugin",
        repo: "https://nvidia.github.io/k8s-device-plugin",
        version: "0.20.0",
        release: RELEASES.devicePlugin,
        values: "nvidia-device-plugin",
    },
    /** Installed through the CertManager component, whose own arguments carry its values. */
    certManager: {
        chart: "cert-manager",
        repo: "https://charts.jetstack.io",
        version: "v1.19.1",
        release: RELEASES.certManager,
    },
    /** KEDA: event-driven autoscaling (the Celery workers by Redis queue depth). */
    keda: {
        chart: "keda",
        repo: "https://kedacore.github.io/charts",
        version: "2.20.2",
        release: RELEASES.keda,
        values: "keda",
    },
} as const satisfies Record<string, ChartRef>;
export type ChartKey = keyof typeof CHARTS;

/** The archive `helm package` writes for a chart: `<chart>-<version>.tgz`. */
export function chartArchiveName(ref: Pick<ChartRef, "chart" | "version">): string {
    return `${ref.chart}-${ref.version}.tgz`;
}
