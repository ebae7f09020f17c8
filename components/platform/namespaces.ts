import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { labels } from "../../lib/k8s";

/** Pod Security Standard levels (https://kubernetes.io/docs/concepts/security/pod-security-standards/). */
export type PodSecurityLevel = "restricted" | "baseline" | "privileged";

/**
 * Pod Security Admission labels: enforce and warn at the level, audit at `restricted`, so a namespace that must run
 * below it still records every pod that would not pass (in the API server's audit log) without a warning on every
 * `pulumi up` for pods the namespace admits on purpose. The version is pinned to `latest` on purpose: the stack's own
 * pods are tested against the current `restricted` profile (policy/, test/policy.test.ts) and the API server tier.
 */
export function podSecurityLabels(level: PodSecurityLevel): Record<string, string> {
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": level,
        "pod-security.kubernetes.io/warn-version": "latest",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "latest",
    };
}

/** The namespaces the stack owns. */
export interface NamespacesArgs {
    /** Pipeline namespace (Airflow, MLflow, FastAPI, FinGPT, Postgres, Redis). */
    app: string;
    /** Prometheus, Grafana and the StatsD exporter. */
    monitoring: string;
    /** cert-manager's namespace, created only when the stack installs cert-manager. */
    certManager?: string;
    /** The NVIDIA device plugin's namespace, created only when the stack installs the plugin. */
    devicePlugin?: string;
    /** KEDA's namespace, created only when the Celery workers scale by queue depth. */
    keda?: string;
}

/**
 * The namespaces the stack owns, each labelled for Pod Security Admission. Every namespace enforces `restricted`
 * except the device plugin's: its DaemonSet mounts the kubelet's device-plugin socket directory from the host
 * (hostPath), which even `baseline` forbids (so do the host files its node-feature-discovery worker reads), so that
 * namespace enforces `privileged` and holds nothing but the plugin chart.
 */
export class Namespaces extends pulumi.ComponentResource {
    public readonly app: pulumi.Output<string>;
    public readonly monitoring: pulumi.Output<string>;
    /** Set when `certManager` was given. */
    public readonly certManager?: pulumi.Output<string>;
    /** Set when `devicePlugin` was given. */
    public readonly devicePlugin?: pulumi.Output<string>;
    /** Set when `keda` was given. */
    public readonly keda?: pulumi.Output<string>;

    constructor(name: string, args: NamespacesArgs, opts?: pulumi.ComponentResourceOptions) {
        super(
            "fx:platform:Namespaces",
            name,
            {},
            { ...opts, aliases: [{ type: "fx:core:Namespaces" }, ...(opts?.aliases ?? [])] },
        );
        const make = (ns: string, component: string, level: PodSecurityLevel, reason?: string) =>
            new k8s.core.v1.Namespace(
                `${name}-${ns}`,
                {
                    metadata: {
                        name: ns,
                        labels: { ...labels(ns, component), ...podSecurityLabels(level) },
                        annotations: reason ? { "fx-ml-pipeline/pod-security-reason": reason } : undefined,
                    },
                },
                { parent: this, aliases: [{ name: ns }] },
            ).metadata.name;
        this.app = make(args.app, "pipeline", "restricted");
        this.monitoring = make(args.monitoring, "monitoring", "restricted");
        if (args.certManager) this.certManager = make(args.certManager, "tls", "restricted");
        if (args.keda) this.keda = make(args.keda, "autoscaling", "restricted");
        if (args.devicePlugin) {
            this.devicePlugin = make(
                args.devicePlugin,
                "gpu",
                "privileged",
                "The NVIDIA device plugin DaemonSet mounts /var/lib/kubelet/device-plugins from the host (hostPath), and its node-feature-discovery worker reads host files to label GPU nodes; baseline and restricted forbid hostPath. Nothing else runs here.",
            );
        }
        this.registerOutputs({
            app: this.app,
            monitoring: this.monitoring,
            certManager: this.certManager,
            devicePlugin: this.devicePlugin,
            keda: this.keda,
        });
    }
}
