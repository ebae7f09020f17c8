import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { ResourceSpec } from "./config";

/** Shared shapes: labels, security contexts and resources, so every component writes them the same way. */

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

/** Pod-level security that meets the `restricted` Pod Security Standard. */
export function podSecurityContext(uid = 1000, gid = 0): k8s.types.input.core.v1.PodSecurityContext {
    return {
        runAsNonRoot: true,
        runAsUser: uid,
        runAsGroup: gid,
        fsGroup: gid === 0 ? 1000 : gid,
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

/** `<name>.<namespace>.svc.cluster.local` */
export function serviceHost(name: pulumi.Input<string>, namespace: pulumi.Input<string>): pulumi.Output<string> {
    return pulumi.interpolate`${name}.${namespace}.svc.cluster.local`;
}
