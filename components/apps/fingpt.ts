import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { SecretKeyRef, secretEnv } from "../platform/secrets";
import { dataVolume, httpProbe, ResourceSpec, Toleration } from "../../lib/k8s";
import { ContainerSpec, ScratchVolume, Workload } from "../../lib/workload";
import { APP, ENV, IMAGE_PATHS, PORT_NAMES, PORTS } from "../../lib/contracts";

const FINGPT_NAME = APP.fingpt;
/** The fx-fingpt image's Hugging Face home (dockerfiles/Dockerfile.fingpt); the model cache PVC is mounted here. */
const hfHome = IMAGE_PATHS.fingptHfHome;

export interface FingptArgs {
    namespace: pulumi.Input<string>;
    /** Digest-pinned fx-fingpt image. */
    image: pulumi.Input<string>;
    /** `model`: base model + LoRA adapter on a GPU; `lexicon`: the CPU-only fallback scorer. */
    mode: "model" | "lexicon";
    baseModel: string;
    adapter: string;
    /** The GPU pool (model mode only); `count` GPUs per pod (config gpuCount, validated there). */
    gpu: { count: number; nodeSelector: Readonly<Record<string, string>>; tolerations: readonly Toleration[] };
    resources: ResourceSpec;
    /** Hugging Face model cache (model mode only). */
    cache: { size: string; storageClass?: string; retainOnDelete: boolean };
    /** Hugging Face token for gated base models. */
    hfToken?: SecretKeyRef;
    imagePullSecretName?: pulumi.Input<string>;
}

/**
 * FinGPT news sentiment on PORTS.fingpt. In model mode: `gpu.count` GPUs from the GPU pool (node selector +
 * tolerations), the Hugging Face cache on a PVC, /dev/shm in memory, a startup probe that waits out the model load,
 * and Recreate (one RWO volume, GPUs held by the old pod). In lexicon mode: a plain CPU pod.
 */
export class Fingpt extends pulumi.ComponentResource {
    public readonly serviceName: pulumi.Output<string>;
    public readonly workload: Workload;

    constructor(name: string, args: FingptArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:app:Fingpt", name, {}, opts);
        const model = args.mode === "model";

        const env: k8s.types.input.core.v1.EnvVar[] = [
            { name: ENV.fingpt.mode, value: args.mode },
            { name: ENV.fingpt.baseModel, value: args.baseModel },
            { name: ENV.fingpt.adapter, value: args.adapter },
            { name: ENV.fingpt.loadIn8bit, value: "true" },
            { name: ENV.fingpt.hfHome, value: hfHome },
            // torch, triton and bitsandbytes keep caches under the home folder; the root filesystem is read-only.
            { name: ENV.process.home, value: "/tmp" },
        ];
        if (args.hfToken) env.push(secretEnv(ENV.fingpt.hfToken, args.hfToken));

        const scratch: Record<string, ScratchVolume> = { tmp: { mountPath: "/tmp" } };
        const volumes: k8s.types.input.core.v1.Volume[] = [];
        const volumeMounts: k8s.types.input.core.v1.VolumeMount[] = [];
        if (model) {
            // PyTorch shares tensors through /dev/shm; the container runtime's default is 64Mi.
            scratch.dshm = { mountPath: "/dev/shm", medium: "Memory", sizeLimit: "2Gi" };
            const cache = dataVolume(
                `${name}-model-cache`,
                { name: "fingpt-model-cache", namespace: args.namespace, app: FINGPT_NAME, ...args.cache },
                this,
            );
            volumes.push({ name: "model-cache", persistentVolumeClaim: { claimName: cache.metadata.name } });
            volumeMounts.push({ name: "model-cache", mountPath: hfHome });
        }

        const container: ContainerSpec = {
            name: "fingpt",
            image: args.image,
            command: ["uvicorn", "fingpt_service.server:app", "--host", "0.0.0.0", "--port", String(PORTS.fingpt)],
            env,
            ports: [{ name: PORT_NAMES.http, containerPort: PORTS.fingpt }],
            // Downloading and loading the 8-bit base model takes minutes: up to 60 x 10 s before liveness applies.
            startupProbe: httpProbe(
                "/ready",
                PORT_NAMES.http,
                model ? { periodSeconds: 10, failureThreshold: 60 } : {},
            ),
            readinessProbe: httpProbe("/ready", PORT_NAMES.http),
            livenessProbe: httpProbe("/health", PORT_NAMES.http, { periodSeconds: 20 }),
            resources: args.resources,
            extraLimits: model ? { "nvidia.com/gpu": String(args.gpu.count) } : undefined,
            volumeMounts,
        };
        this.workload = new Workload(
            FINGPT_NAME,
            {
                namespace: args.namespace,
                component: "sentiment",
                container,
                scratch,
                volumes,
                service: { ports: [{ name: PORT_NAMES.http, port: PORTS.fingpt, targetPort: PORT_NAMES.http }] },
                metrics: { port: PORTS.fingpt, path: "/metrics" },
                imagePullSecretName: args.imagePullSecretName,
                nodeSelector: model ? args.gpu.nodeSelector : undefined,
                tolerations: model ? args.gpu.tolerations : undefined,
                // One RWO cache volume and the GPUs it holds: the old pod must go before the new one can start.
                strategy: { type: "Recreate" },
                await: { timeout: model ? "20m" : "10m" },
            },
            { parent: this },
        );
        this.serviceName = this.workload.serviceName!;
        this.registerOutputs({ serviceName: this.serviceName });
    }
}
