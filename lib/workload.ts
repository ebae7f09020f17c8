import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { ResourceSpec, Toleration } from "./k8s";
import { containerSecurityContext, emptyDirVolume, labels, podSecurityContext, resources, selectorLabels } from "./k8s";

import Input = k8s.types.input.core.v1;

/** One container of a workload's pod. Security context, resources and image pull policy come from the helper. */
export interface ContainerSpec {
    name: string;
    /** Digest-pinned reference (`repo@sha256:...`) from the images component. */
    image: pulumi.Input<string>;
    command?: pulumi.Input<string>[];
    args?: pulumi.Input<string>[];
    env?: pulumi.Input<Input.EnvVar>[];
    envFrom?: pulumi.Input<Input.EnvFromSource>[];
    ports?: { name: string; containerPort: number; protocol?: "TCP" | "UDP" }[];
    startupProbe?: Input.Probe;
    readinessProbe?: Input.Probe;
    livenessProbe?: Input.Probe;
    /** Requests and limits from stack config (memory request = limit). */
    resources: ResourceSpec;
    /** Extended resources such as `nvidia.com/gpu`, set as limits. */
    extraLimits?: Record<string, string>;
    /** Default true; a process that must write outside its scratch volumes says so here. */
    readOnlyRootFilesystem?: boolean;
    volumeMounts?: Input.VolumeMount[];
}

/** A scratch emptyDir mounted into every container of the pod. */
export interface ScratchVolume {
    mountPath: string;
    medium?: "Memory";
    sizeLimit?: string;
}

export interface ServicePort {
    name: string;
    port: number;
    /** Container port name or number; defaults to `port`. */
    targetPort?: number | string;
    protocol?: "TCP" | "UDP";
}

export type WorkloadKind = "Deployment" | "StatefulSet" | "Job";

/** What every workload of the pipeline declares; the helper adds labels, hardening and the Service. */
export interface WorkloadArgs {
    namespace: pulumi.Input<string>;
    /** `app.kubernetes.io/component`: the role of the workload (server, scheduler, job...). */
    component: string;
    /** Deployment (default), StatefulSet (stable pod hostnames through a headless Service) or a run-once Job. */
    kind?: WorkloadKind;
    /** Pod count; "autoscaled" leaves it to a HorizontalPodAutoscaler (so `pulumi up` never fights it). */
    replicas?: number | "autoscaled";
    /** The autoscaler's floor when `replicas` is "autoscaled" (default 1). */
    minReplicas?: number;
    /**
     * A replicated workload (more than one replica, or an autoscaler floor above one) spreads its pods over nodes and
     * gets a PodDisruptionBudget of its own (`maxUnavailable: 1`); false where the caller keeps its own budget.
     */
    disruptionBudget?: boolean;
    container: ContainerSpec;
    initContainers?: ContainerSpec[];
    /** emptyDir volumes by volume name, mounted into every container (the root filesystem is read-only). */
    scratch?: Record<string, ScratchVolume>;
    /** Further pod volumes (PVCs, ConfigMaps, Secrets); mount them through `container.volumeMounts`. */
    volumes?: pulumi.Input<Input.Volume>[];
    /** A Service named like the workload, selecting exactly its pods. Headless for a StatefulSet. */
    service?: { ports: ServicePort[] };
    /** The container serves Prometheus metrics: adds the `prometheus.io/*` pod annotations. */
    metrics?: { port: number; path: string };
    imagePullSecretName?: pulumi.Input<string>;
    nodeSelector?: Readonly<Record<string, string>>;
    tolerations?: readonly Toleration[];
    /** Deployment strategy; defaults to a rolling update that never drops below the desired replicas. */
    strategy?: k8s.types.input.apps.v1.DeploymentStrategy;
    podAnnotations?: Record<string, pulumi.Input<string>>;
    terminationGracePeriodSeconds?: number;
    /** Job settings (kind Job only). */
    job?: { backoffLimit?: number; activeDeadlineSeconds?: number };
    /** UID/GID the pod runs as (the image's non-root user; fsGroup follows the GID); default APP_USER. */
    runAs?: { uid: number; gid: number };
    /** Extra labels on the pod template (not used in selectors). */
    podLabels?: Record<string, string>;
    /**
     * Why a container needs a writable root filesystem; required when any container sets
     * `readOnlyRootFilesystem: false`. It becomes the documented linter exception on the object.
     */
    writableRootReason?: string;
    /**
     * The image is a third party's, named by its tag because no digest of it can be read here (the Postgres image
     * the Cluster also runs): the reason becomes the documented exception to the linters' digest and pull-policy
     * checks on the object.
     */
    tagPinnedReason?: string;
    /**
     * How long `pulumi up` waits for the workload to become ready (or, for a Job, to complete); `false` skips the
     * wait, for pods whose readiness depends on something the pipeline produces later (a trained model).
     */
    await?: { timeout: string } | false;
}

function linterExceptions(args: WorkloadArgs): Record<string, string> | undefined {
    const skips: string[] = [];
    const annotations: Record<string, string> = {};
    if (args.writableRootReason) {
        annotations["kube-score/ignore"] = "container-security-context-readonlyrootfilesystem";
        skips.push(`CKV_K8S_22=${args.writableRootReason}`);
    }
    if (args.tagPinnedReason) {
        skips.push(`CKV_K8S_43=${args.tagPinnedReason}`, `CKV_K8S_15=${args.tagPinnedReason}`);
    }
    skips.forEach((skip, i) => (annotations[`checkov.io/skip${i + 1}`] = skip));
    return Object.keys(annotations).length ? annotations : undefined;
}

/** The non-root user of the images built FROM fx-base (fastapi, mlflow) and of fx-fingpt (dockerfiles/). */
export const APP_USER = { uid: 1000, gid: 1000 } as const;
/** The official Airflow image's user: uid 50000, group 0 (the Airflow images keep it). */
export const AIRFLOW_USER = { uid: 50000, gid: 0 } as const;

/** The image pull policy for digest-pinned references: the digest already fixes the content. */
const PULL_POLICY = "IfNotPresent";

function container(spec: ContainerSpec, scratchMounts: Input.VolumeMount[]): pulumi.Input<Input.Container> {
    return {
        name: spec.name,
        image: spec.image,
        imagePullPolicy: PULL_POLICY,
        command: spec.command,
        args: spec.args,
        env: spec.env,
        envFrom: spec.envFrom,
        ports: spec.ports?.map((p) => ({
            name: p.name,
            containerPort: p.containerPort,
            protocol: p.protocol ?? "TCP",
        })),
        startupProbe: spec.startupProbe,
        readinessProbe: spec.readinessProbe,
        livenessProbe: spec.livenessProbe,
        resources: resources(spec.resources, spec.extraLimits),
        securityContext: containerSecurityContext(spec.readOnlyRootFilesystem ?? true),
        volumeMounts: [...scratchMounts, ...(spec.volumeMounts ?? [])],
    };
}

/**
 * A Deployment, StatefulSet or Job with the recommended labels, the `restricted` security profile, requests and
 * limits, probes, scratch volumes for a read-only root filesystem and, optionally, a Service that selects exactly its
 * pods. Every workload of the pipeline is declared through this helper, so they all look the same.
 */
export class Workload extends pulumi.ComponentResource {
    /** The Kubernetes name of the workload, its Service and its `app.kubernetes.io/name` label. */
    public readonly name: string;
    /** Labels that select the workload's pods. */
    public readonly selector: Readonly<Record<string, string>>;
    /** The Service's name, when the workload has one. */
    public readonly serviceName?: pulumi.Output<string>;
    /** The workload object itself, for dependsOn. */
    public readonly resource: k8s.apps.v1.Deployment | k8s.apps.v1.StatefulSet | k8s.batch.v1.Job;

    constructor(name: string, args: WorkloadArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:app:Workload", name, {}, opts);
        const kind = args.kind ?? "Deployment";
        if (kind === "Job" && args.service) {
            throw new Error(`Workload '${name}': a Job has no Service; remove 'service' or use a Deployment`);
        }
        if (kind !== "Job" && !args.container.livenessProbe && !args.container.readinessProbe) {
            throw new Error(`Workload '${name}': a long-running ${kind} needs a readiness or liveness probe`);
        }
        const writable = [args.container, ...(args.initContainers ?? [])].filter(
            (c) => c.readOnlyRootFilesystem === false,
        );
        if (writable.length > 0 && !args.writableRootReason) {
            throw new Error(
                `Workload '${name}': container(s) ${writable.map((c) => c.name).join(", ")} need a writable root ` +
                    "filesystem; say why in 'writableRootReason'",
            );
        }
        this.name = name;
        this.selector = selectorLabels(name);
        const meta: k8s.types.input.meta.v1.ObjectMeta = {
            name,
            namespace: args.namespace,
            labels: labels(name, args.component),
            // The sanctioned exceptions (a writable root, a third party's tag-pinned image), recorded where the peer
            // linters read them.
            annotations: linterExceptions(args),
        };

        const scratch = Object.entries(args.scratch ?? {});
        const scratchMounts = scratch.map(([vol, s]) => ({ name: vol, mountPath: s.mountPath }));
        const runAs = args.runAs ?? APP_USER;
        const annotations: Record<string, pulumi.Input<string>> = { ...(args.podAnnotations ?? {}) };
        if (args.metrics) {
            annotations["prometheus.io/scrape"] = "true";
            annotations["prometheus.io/port"] = String(args.metrics.port);
            annotations["prometheus.io/path"] = args.metrics.path;
        }
        const replicated =
            kind !== "Job" && (args.replicas === "autoscaled" ? (args.minReplicas ?? 1) > 1 : (args.replicas ?? 1) > 1);
        const podSpec: Input.PodSpec = {
            // None of the pipeline's processes talks to the Kubernetes API.
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(runAs),
            imagePullSecrets: args.imagePullSecretName ? [{ name: args.imagePullSecretName }] : undefined,
            nodeSelector:
                args.nodeSelector && Object.keys(args.nodeSelector).length ? { ...args.nodeSelector } : undefined,
            tolerations: args.tolerations?.length ? args.tolerations.map((t) => ({ ...t })) : undefined,
            // One replica per node while there are nodes enough (maxSkew 1 over hostnames), so a lost node takes at
            // most one; zones are preferred, not required (a single-zone cluster still schedules). The pod template
            // hash keeps a rolling update's new pods spread among themselves.
            topologySpreadConstraints: replicated ? spreadConstraints(this.selector, kind) : undefined,
            terminationGracePeriodSeconds: args.terminationGracePeriodSeconds,
            restartPolicy: kind === "Job" ? "OnFailure" : "Always",
            initContainers: args.initContainers?.map((c) => container(c, scratchMounts)),
            containers: [container(args.container, scratchMounts)],
            volumes: [
                ...scratch.map(([vol, s]) => emptyDirVolume(vol, { medium: s.medium, sizeLimit: s.sizeLimit })),
                ...(args.volumes ?? []),
            ],
        };
        const template = {
            metadata: {
                labels: { ...labels(name, args.component), ...(args.podLabels ?? {}) },
                annotations: Object.keys(annotations).length ? annotations : undefined,
            },
            spec: podSpec,
        };
        const parent: pulumi.CustomResourceOptions = {
            parent: this,
            customTimeouts: args.await ? { create: args.await.timeout, update: args.await.timeout } : undefined,
        };
        if (args.await === false) {
            // The Kubernetes provider's documented opt-out of its readiness await.
            meta.annotations = { ...(meta.annotations ?? {}), "pulumi.com/skipAwait": "true" };
        }
        const replicas = args.replicas === "autoscaled" ? undefined : (args.replicas ?? 1);

        if (kind === "Job") {
            // The provider waits for a Job to complete, so resources that dependOn it start after it succeeded.
            // A Job's pod template is immutable: a changed image replaces the Job, which reruns it.
            this.resource = new k8s.batch.v1.Job(
                name,
                {
                    metadata: meta,
                    spec: {
                        backoffLimit: args.job?.backoffLimit ?? 6,
                        activeDeadlineSeconds: args.job?.activeDeadlineSeconds,
                        template,
                    },
                },
                { ...parent, deleteBeforeReplace: true },
            );
        } else if (kind === "StatefulSet") {
            this.resource = new k8s.apps.v1.StatefulSet(
                name,
                {
                    metadata: meta,
                    spec: {
                        serviceName: name,
                        replicas,
                        podManagementPolicy: "Parallel",
                        selector: { matchLabels: this.selector },
                        template,
                    },
                },
                parent,
            );
        } else {
            this.resource = new k8s.apps.v1.Deployment(
                name,
                {
                    metadata: meta,
                    spec: {
                        replicas,
                        selector: { matchLabels: this.selector },
                        strategy: args.strategy ?? {
                            type: "RollingUpdate",
                            rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
                        },
                        template,
                    },
                },
                parent,
            );
        }

        if (args.service) {
            const svc = new k8s.core.v1.Service(
                name,
                {
                    metadata: { name, namespace: args.namespace, labels: meta.labels },
                    spec: {
                        // A StatefulSet's Service is headless, so each pod gets a DNS name <pod>.<service>.
                        clusterIP: kind === "StatefulSet" ? "None" : undefined,
                        selector: this.selector,
                        ports: args.service.ports.map((p) => ({
                            name: p.name,
                            port: p.port,
                            targetPort: p.targetPort ?? p.port,
                            protocol: p.protocol ?? "TCP",
                        })),
                    },
                },
                parent,
            );
            this.serviceName = svc.metadata.name;
        }
        if (replicated && args.disruptionBudget !== false) {
            // maxUnavailable (not minAvailable): a drain proceeds one pod at a time whatever the replica count.
            new k8s.policy.v1.PodDisruptionBudget(
                name,
                {
                    metadata: { name, namespace: args.namespace, labels: meta.labels },
                    spec: { maxUnavailable: 1, selector: { matchLabels: this.selector } },
                },
                parent,
            );
        }
        this.registerOutputs({ serviceName: this.serviceName });
    }
}

/** Topology spread of a replicated workload's pods: hard over nodes, soft over zones. */
export function spreadConstraints(
    selector: Record<string, string>,
    kind: WorkloadKind,
): Input.TopologySpreadConstraint[] {
    const common = {
        maxSkew: 1,
        labelSelector: { matchLabels: { ...selector } },
        // A Deployment's old and new ReplicaSets are spread apart; a StatefulSet's pods carry no such hash.
        ...(kind === "Deployment" ? { matchLabelKeys: ["pod-template-hash"] } : {}),
    };
    return [
        { ...common, topologyKey: "kubernetes.io/hostname", whenUnsatisfiable: "DoNotSchedule" },
        { ...common, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: "ScheduleAnyway" },
    ];
}
