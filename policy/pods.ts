/** Pod specs: where each workload kind keeps its pod template, and its containers, for the policies. */
import { ReportViolation, ResourceValidationArgs } from "@pulumi/policy";
// Plain-JSON Kubernetes shapes (types only): CrossGuard hands policies unwrapped objects, not Pulumi inputs.
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";

/** Workload kinds whose pods run until stopped (probes apply); Jobs and CronJobs run to completion. */
export const LONG_RUNNING = [
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:core/v1:Pod",
];
export const WORKLOADS = [...LONG_RUNNING, "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob"];

/** The pod spec of a workload resource, or undefined for anything else. */
export function podSpecOf(type: string, props: ResourceValidationArgs["props"]): IPodSpec | undefined {
    switch (type) {
        case "kubernetes:core/v1:Pod":
            return props.spec;
        case "kubernetes:batch/v1:CronJob":
            return props.spec?.jobTemplate?.spec?.template?.spec;
        default:
            return WORKLOADS.includes(type) ? props.spec?.template?.spec : undefined;
    }
}

export interface NamedContainer {
    /** `container app`, `initContainer wait-for-db`: how a message names it. */
    label: string;
    /** Runs for the pod's lifetime: a regular container or a sidecar (an init container with restartPolicy Always). */
    longRunning: boolean;
    spec: IContainer;
}

/** Every container of a pod spec: regular, init and ephemeral. */
export function containersOf(pod: IPodSpec): NamedContainer[] {
    const list = (
        key: "containers" | "initContainers" | "ephemeralContainers",
        longRunning: (c: IContainer) => boolean,
    ) =>
        ((pod[key] ?? []) as IContainer[]).map((c) => ({
            label: `${key.replace(/s$/, "")} ${c.name}`,
            longRunning: longRunning(c),
            spec: c,
        }));
    return [
        ...list("containers", () => true),
        ...list("initContainers", (c) => c.restartPolicy === "Always"),
        ...list("ephemeralContainers", () => false),
    ];
}

/** Runs `check` on the pod spec of every workload; other resources are not applicable. */
export function forPods(check: (pod: IPodSpec, args: ResourceValidationArgs) => string[]) {
    return (args: ResourceValidationArgs, report: ReportViolation) => {
        const pod = podSpecOf(args.type, args.props);
        if (!pod) return;
        for (const message of check(pod, args)) report(message);
    };
}
