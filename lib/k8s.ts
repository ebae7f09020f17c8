import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";

/** Shared shapes: labels, security contexts and resources, so every component writes them the same way. */

/** CPU request and limit, memory (request = limit, so a pod is never OOM-killed for memory it was promised). */
export interface ResourceSpec {
    readonly cpuRequest: string;
    readonly cpuLimit: string;
    readonly memory: string;
}

/** A pod toleration of a node taint. */
export interface Toleration {
    readonly key: string;
    readonly operator: "Exists" | "Equal";
    readonly value?: string;
    readonly effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export const PART_OF = "fx-ml-pipeline";

/** The recommended `app.kubernetes.io/*` labels. `name` identifies the workload, `component` its role. */
export function labels(name: string, component: string, instance: string = PART_OF): Record<string, string> {
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    };
}

/** The subset of labels that selects a workload's pods (stable across upgrades). */
export function selectorLabels(name: string, instance: string = PART_OF): Record<string, string> {
    return { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance };
}

/**
 * Pod-level security that meets the `restricted` Pod Security Standard, for the image's user. The one place that
 * decides fsGroup: the user's own group, so mounted volumes belong to the group the process writes as (the Airflow
 * images' group 0 included, as the official Airflow chart sets it: their files are group-0 writable).
 */
export function podSecurityContext(user: { uid: number; gid: number }): k8s.types.input.core.v1.PodSecurityContext {
    return {
        runAsNonRoot: true,
        runAsUser: user.uid,
        runAsGroup: user.gid,
        fsGroup: user.gid,
        seccompProfile: { type: "RuntimeDefault" },
    };
}

/** Container-level security: no privilege escalation, no capabilities, read-only root unless the process writes. */
export function containerSecurityContext(readOnlyRootFilesystem = true): k8s.types.input.core.v1.SecurityContext {
    return {
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
    };
}

/** Requests and limits from a config ResourceSpec; memory request = limit. */
export function resources(
    spec: ResourceSpec,
    extraLimits: Record<string, string> = {},
): k8s.types.input.core.v1.ResourceRequirements {
    return {
        requests: { cpu: spec.cpuRequest, memory: spec.memory },
        limits: { cpu: spec.cpuLimit, memory: spec.memory, ...extraLimits },
    };
}

/** `<name>.<namespace>.svc.cluster.local`, the one spelling of a Service's DNS name (plain where both are). */
export function serviceHost(name: string, namespace: string): string;
export function serviceHost(name: pulumi.Input<string>, namespace: pulumi.Input<string>): pulumi.Output<string>;
export function serviceHost(
    name: pulumi.Input<string>,
    namespace: pulumi.Input<string>,
): string | pulumi.Output<string> {
    if (typeof name === "string" && typeof namespace === "string") return `${name}.${namespace}.svc.cluster.local`;
    return pulumi.interpolate`${name}.${namespace}.svc.cluster.local`;
}

/** Probe timings; anything not given keeps the Kubernetes default. */
export type ProbeTiming = Pick<
    k8s.types.input.core.v1.Probe,
    "initialDelaySeconds" | "periodSeconds" | "timeoutSeconds" | "failureThreshold" | "successThreshold"
>;

/** HTTP GET probe on a named or numbered container port. */
export function httpProbe(
    path: string,
    port: number | string,
    timing: ProbeTiming = {},
): k8s.types.input.core.v1.Probe {
    return { httpGet: { path, port }, timeoutSeconds: 5, periodSeconds: 10, failureThreshold: 3, ...timing };
}

/**
 * TCP probe: the process accepts connections. Used for liveness beside an HTTP readiness check, so a dependency
 * outage (which fails readiness) never restarts a healthy process.
 */
export function tcpProbe(port: number | string, timing: ProbeTiming = {}): k8s.types.input.core.v1.Probe {
    return { tcpSocket: { port }, timeoutSeconds: 5, periodSeconds: 20, failureThreshold: 3, ...timing };
}

/** Exec probe (for processes without an HTTP endpoint, such as the Airflow scheduler or a Celery worker). */
export function execProbe(command: string[], timing: ProbeTiming = {}): k8s.types.input.core.v1.Probe {
    return { exec: { command }, timeoutSeconds: 20, periodSeconds: 60, failureThreshold: 5, ...timing };
}

/** A scratch volume; `medium: "Memory"` makes it tmpfs (counted against the pod's memory limit). */
export function emptyDirVolume(
    name: string,
    opts: { medium?: "Memory"; sizeLimit?: string } = {},
): k8s.types.input.core.v1.Volume {
    return { name, emptyDir: { ...opts } };
}

/** A ReadWriteOnce volume that holds data: sized and classed by config, kept on destroy where the stack says so. */
export interface DataVolumeArgs {
    name: string;
    namespace: pulumi.Input<string>;
    /** `app.kubernetes.io/name` of the workload that mounts it. */
    app: string;
    size: string;
    storageClass?: string;
    retainOnDelete: boolean;
}

export function dataVolume(
    resourceName: string,
    args: DataVolumeArgs,
    parent: pulumi.Resource,
): k8s.core.v1.PersistentVolumeClaim {
    return new k8s.core.v1.PersistentVolumeClaim(
        resourceName,
        {
            metadata: { name: args.name, namespace: args.namespace, labels: labels(args.app, "storage") },
            spec: {
                accessModes: ["ReadWriteOnce"],
                storageClassName: args.storageClass,
                resources: { requests: { storage: args.size } },
            },
        },
        {
            parent,
            // Protected too: `pulumi destroy` refuses while it is, and leaves the volume if protection is lifted.
            retainOnDelete: args.retainOnDelete,
            protect: args.retainOnDelete,
        },
    );
}
