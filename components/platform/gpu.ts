import * as pulumi from "@pulumi/pulumi";
import { Toleration } from "../../lib/k8s";
import { HelmCharts } from "../../lib/chart-values";

export interface GpuDevicePluginArgs {
    /** The stack's Helm charts (stack config `chartRepository`). */
    charts: HelmCharts;
    /**
     * Node labels of the GPU pool; the DaemonSet is pinned to them. Never empty from config: gpuNodeSelector, or with
     * the plugin installed and none given, the label its node-feature-discovery sets (NFD_NVIDIA_GPU_LABEL).
     */
    nodeSelector: Readonly<Record<string, string>>;
    /** Taints of the GPU pool. */
    tolerations: readonly Toleration[];
    /** Namespace of the plugin (its own: the DaemonSet needs hostPath mounts the app namespace's policy refuses). */
    namespace: pulumi.Input<string>;
}

/**
 * The node affinity that replaces the chart's default (NFD labels, or `nvidia.com/gpu.present`): every label of the
 * GPU pool must match; by default that is the label the chart's node-feature-discovery sets (NFD_NVIDIA_GPU_LABEL).
 */
export function gpuNodeAffinity(nodeSelector: Readonly<Record<string, string>>) {
    return {
        nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                    {
                        matchExpressions: Object.entries(nodeSelector).map(([key, value]) => ({
                            key,
                            operator: "In",
                            values: [value],
                        })),
                    },
                ],
            },
        },
    };
}

/**
 * The NVIDIA device plugin (Helm), which advertises `nvidia.com/gpu` on the GPU pool's nodes. Optional per stack:
 * GKE and eksctl bring their own plugin.
 */
export class GpuDevicePlugin extends pulumi.ComponentResource {
    public readonly releaseName: pulumi.Output<string>;

    constructor(name: string, args: GpuDevicePluginArgs, opts?: pulumi.ComponentResourceOptions) {
        super(
            "fx:platform:DevicePlugin",
            name,
            {},
            { ...opts, aliases: [{ type: "fx:gpu:DevicePlugin" }, ...(opts?.aliases ?? [])] },
        );
        const release = args.charts.release(
            name,
            "nvidiaDevicePlugin",
            {
                namespace: args.namespace,
                // Helm replaces lists whole, so these terms and tolerations replace the chart's defaults.
                values: {
                    affinity: gpuNodeAffinity(args.nodeSelector),
                    tolerations: [
                        { key: "CriticalAddonsOnly", operator: "Exists" },
                        ...args.tolerations.map((t) => ({ ...t })),
                    ],
                    // node-feature-discovery's worker must run on the tainted GPU nodes to label them (its chart
                    // default tolerates only nvidia.com/gpu=present, not a taint without a value).
                    nfd: { worker: { tolerations: args.tolerations.map((t) => ({ ...t })) } },
                },
                atomic: true,
                timeout: 300,
            },
            { parent: this },
        );
        this.releaseName = release.status.name;
        this.registerOutputs({ releaseName: this.releaseName });
    }
}
