import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { SecretKeyRef, secretEnv } from "../platform/secrets";
import { dataVolume, httpProbe, ResourceSpec, serviceHost, tcpProbe } from "../../lib/k8s";
import { Workload } from "../../lib/workload";
import { APP, ENV, PORT_NAMES, PORTS } from "../../lib/contracts";

const MLFLOW_NAME = APP.mlflow;
const MLFLOW_PORT = PORTS.mlflow;
const ARTIFACTS_PATH = "/mlflow/artifacts";
const METRICS_DIR = "/tmp/mlflow-metrics";

/** Where the tracking server keeps artifacts it proxies (`--serve-artifacts`). */
export type MlflowArtifactStore =
    /** A PersistentVolumeClaim mounted into the server (the default: works on any cluster). */
    | { kind: "pvc"; size: string; storageClass?: string; retainOnDelete: boolean }
    /**
     * Object storage, `s3://bucket[/prefix]` on AWS S3 or any S3-compatible store (config mlflowArtifactDestination);
     * credentials come from a Secret whose keys become env vars (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), or from
     * the pod's workload identity when no Secret is named.
     */
    | {
          kind: "objectStore";
          destination: string;
          /** An S3-compatible store's endpoint (ENV.mlflowServer.s3EndpointUrl); unset is AWS S3. */
          endpoint?: string;
          credentialsSecretName?: pulumi.Input<string>;
      };

export interface MlflowArgs {
    namespace: pulumi.Input<string>;
    /** Digest-pinned fx-mlflow image. */
    image: pulumi.Input<string>;
    /** The backend store URI (it holds the database password), by Secret key (Secrets.connections). */
    backendStoreUri: SecretKeyRef;
    resources: ResourceSpec;
    artifacts: MlflowArtifactStore;
    /** DNS suffix of the UIs: the ingress host is `mlflow.<domain>`. */
    domain: string;
    imagePullSecretName?: pulumi.Input<string>;
}

/** Private IPv4 ranges: the Host header of kubelet probes and Prometheus scrapes is the pod IP. */
const PRIVATE_IP_PATTERNS = ["10.*", "192.168.*", ...Array.from({ length: 16 }, (_, i) => `172.${16 + i}.*`)];

/** Hosts MLflow 3's security middleware accepts: the Service's DNS names, the ingress host, localhost, pod IPs. */
export function mlflowAllowedHosts(namespace: string, domain: string): string[] {
    const names = [
        MLFLOW_NAME,
        `${MLFLOW_NAME}.${namespace}`,
        `${MLFLOW_NAME}.${namespace}.svc`,
        `${MLFLOW_NAME}.${namespace}.svc.cluster.local`,
        `mlflow.${domain}`,
        "localhost",
        "127.0.0.1",
    ];
    return [...names.flatMap((n) => [n, `${n}:*`]), ...PRIVATE_IP_PATTERNS];
}

/**
 * The MLflow tracking server: Postgres backend store (URI in a Secret of its own), artifacts proxied by the server
 * (`--serve-artifacts`) to a PVC or object storage, Prometheus metrics on /metrics, Service `mlflow` on PORTS.mlflow.
 */
export class Mlflow extends pulumi.ComponentResource {
    /** `http://mlflow.<ns>.svc.cluster.local:<port>`, for the services' tracking URI (ENV.model.trackingUri). */
    public readonly trackingUri: pulumi.Output<string>;
    public readonly serviceName: pulumi.Output<string>;
    public readonly workload: Workload;

    constructor(name: string, args: MlflowArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:app:Mlflow", name, {}, opts);
        const ns = pulumi.output(args.namespace);

        const volumes: k8s.types.input.core.v1.Volume[] = [];
        const volumeMounts: k8s.types.input.core.v1.VolumeMount[] = [];
        const envFrom: k8s.types.input.core.v1.EnvFromSource[] = [];
        const objectStoreEnv: k8s.types.input.core.v1.EnvVar[] = [];
        let destination: string;
        if (args.artifacts.kind === "pvc") {
            const pvc = dataVolume(
                `${name}-artifacts`,
                {
                    name: "mlflow-artifacts",
                    namespace: args.namespace,
                    app: MLFLOW_NAME,
                    size: args.artifacts.size,
                    storageClass: args.artifacts.storageClass,
                    retainOnDelete: args.artifacts.retainOnDelete,
                },
                this,
            );
            volumes.push({ name: "artifacts", persistentVolumeClaim: { claimName: pvc.metadata.name } });
            volumeMounts.push({ name: "artifacts", mountPath: ARTIFACTS_PATH });
            destination = ARTIFACTS_PATH;
        } else {
            destination = args.artifacts.destination;
            if (args.artifacts.endpoint)
                objectStoreEnv.push({ name: ENV.mlflowServer.s3EndpointUrl, value: args.artifacts.endpoint });
            if (args.artifacts.credentialsSecretName) {
                envFrom.push({ secretRef: { name: args.artifacts.credentialsSecretName } });
            }
        }

        const allowedHosts = ns.apply((n) => mlflowAllowedHosts(n, args.domain).join(","));
        this.workload = new Workload(
            MLFLOW_NAME,
            {
                namespace: args.namespace,
                component: "tracking-server",
                container: {
                    name: "mlflow",
                    image: args.image,
                    command: ["mlflow", "server"],
                    args: [
                        "--host=0.0.0.0",
                        `--port=${MLFLOW_PORT}`,
                        "--workers=1",
                        "--serve-artifacts",
                        `--artifacts-destination=${destination}`,
                        `--expose-prometheus=${METRICS_DIR}`,
                    ],
                    env: [
                        // `mlflow server` reads the URI (it holds the password) from its environment itself.
                        secretEnv(ENV.mlflowServer.backendStoreUri, args.backendStoreUri),
                        // MLflow >= 3.5 security middleware; older releases ignore the variable.
                        { name: ENV.mlflowServer.allowedHosts, value: allowedHosts },
                        { name: ENV.process.home, value: "/tmp" },
                        // MLflow 3's server-side job runner (GenAI judges, trace roll-ups) starts seven huey
                        // consumers, about 1.2 GiB (bench/results/memory.md); the pipeline runs no server jobs.
                        { name: ENV.mlflowServer.enableJobExecution, value: "false" },
                        // No usage telemetry: the stack sends nothing outside the cluster (on the offline node the
                        // server's telemetry lookups of config.mlflow-telemetry.io filled CoreDNS's log).
                        { name: ENV.mlflowTelemetry.disable, value: "true" },
                        ...objectStoreEnv,
                    ],
                    envFrom,
                    ports: [{ name: PORT_NAMES.http, containerPort: MLFLOW_PORT }],
                    startupProbe: httpProbe("/health", PORT_NAMES.http, { periodSeconds: 5, failureThreshold: 36 }),
                    readinessProbe: httpProbe("/health", PORT_NAMES.http),
                    livenessProbe: tcpProbe(PORT_NAMES.http),
                    resources: args.resources,
                    volumeMounts,
                },
                scratch: { tmp: { mountPath: "/tmp" } },
                volumes,
                service: { ports: [{ name: PORT_NAMES.http, port: MLFLOW_PORT, targetPort: PORT_NAMES.http }] },
                metrics: { port: MLFLOW_PORT, path: "/metrics" },
                imagePullSecretName: args.imagePullSecretName,
                // A ReadWriteOnce volume cannot be attached to a second pod on another node during a rolling update.
                strategy: args.artifacts.kind === "pvc" ? { type: "Recreate" } : undefined,
            },
            { parent: this },
        );
        this.serviceName = this.workload.serviceName!;
        this.trackingUri = pulumi.interpolate`http://${serviceHost(this.serviceName, ns)}:${MLFLOW_PORT}`;
        this.registerOutputs({ trackingUri: this.trackingUri, serviceName: this.serviceName });
    }
}
