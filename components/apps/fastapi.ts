import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { FeastConnection, feastOnlineEnv } from "../data/feast";
import { httpProbe, labels, ResourceSpec } from "../../lib/k8s";
import { Workload } from "../../lib/workload";
import { APP, ENV, IMAGE_PATHS, MODEL, PORT_NAMES, PORTS } from "../../lib/contracts";

const FASTAPI_NAME = APP.fastapi;

export interface FastapiArgs {
    namespace: pulumi.Input<string>;
    /** Digest-pinned fx-fastapi image. */
    image: pulumi.Input<string>;
    resources: ResourceSpec;
    /** HorizontalPodAutoscaler floor and ceiling (config fastapiReplicas and fastapiMaxReplicas, validated there). */
    replicas: { min: number; max: number };
    /** Uvicorn worker processes per pod; each holds its own model and costs about 250 MiB (bench/results/predict.md). */
    workers: number;
    /** Average CPU utilisation (percent of the request) the autoscaler aims for. */
    targetCpuUtilization?: number;
    feast: FeastConnection;
    mlflowTrackingUri: pulumi.Input<string>;
    instruments: readonly string[];
    /** ISO dates on which the market is closed besides weekends (config marketHolidays, validated there). */
    marketHolidays: readonly string[];
    imagePullSecretName?: pulumi.Input<string>;
}

/**
 * The prediction API: gunicorn with uvicorn workers on PORTS.fastapi, autoscaled on CPU, a disruption budget, rolling updates
 * that never drop below the desired replicas, Prometheus metrics on /metrics.
 */
export class Fastapi extends pulumi.ComponentResource {
    public readonly serviceName: pulumi.Output<string>;
    public readonly workload: Workload;

    constructor(name: string, args: FastapiArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:app:Fastapi", name, {}, opts);
        const { min, max } = args.replicas;
        this.workload = new Workload(
            FASTAPI_NAME,
            {
                namespace: args.namespace,
                component: "inference-api",
                replicas: "autoscaled",
                minReplicas: min,
                // Its own budget below covers every replica count (dev's single replica too).
                disruptionBudget: false,
                container: {
                    name: "fastapi",
                    image: args.image,
                    command: ["gunicorn", "-c", "/app/gunicorn.conf.py", "app.main:app"],
                    env: [
                        // Features come from the online store only: no registry, so no Postgres credentials.
                        ...feastOnlineEnv(args.feast),
                        { name: ENV.model.trackingUri, value: args.mlflowTrackingUri },
                        { name: ENV.model.name, value: MODEL.name },
                        { name: ENV.model.alias, value: MODEL.alias },
                        { name: ENV.instruments, value: args.instruments.join(",") },
                        // Counted in trading time: weekends by New York time and these holidays do not age features.
                        { name: ENV.fastapi.featureMaxAgeSeconds, value: "7200" },
                        { name: ENV.marketHolidays, value: args.marketHolidays.join(",") },
                        { name: ENV.fastapi.modelReloadSeconds, value: "60" },
                        { name: ENV.fastapi.webConcurrency, value: String(args.workers) },
                        { name: ENV.fastapi.prometheusMultiprocDir, value: IMAGE_PATHS.fastapiMetricsDir },
                        { name: ENV.process.home, value: "/tmp" },
                    ],
                    ports: [{ name: PORT_NAMES.http, containerPort: PORTS.fastapi }],
                    // /health is 503 until Redis answers and a model is loaded; /livez only says the process runs.
                    readinessProbe: httpProbe("/health", PORT_NAMES.http, { periodSeconds: 10 }),
                    livenessProbe: httpProbe("/livez", PORT_NAMES.http, { periodSeconds: 20 }),
                    startupProbe: httpProbe("/livez", PORT_NAMES.http, { periodSeconds: 5, failureThreshold: 24 }),
                    resources: args.resources,
                },
                scratch: { tmp: { mountPath: "/tmp" } },
                service: { ports: [{ name: PORT_NAMES.http, port: PORTS.fastapi, targetPort: PORT_NAMES.http }] },
                metrics: { port: PORTS.fastapi, path: "/metrics" },
                imagePullSecretName: args.imagePullSecretName,
                // Ready only once the pipeline has trained and promoted a model, which happens after the deploy.
                await: false,
            },
            { parent: this },
        );
        this.serviceName = this.workload.serviceName!;
        const meta = { name: FASTAPI_NAME, namespace: args.namespace, labels: labels(FASTAPI_NAME, "inference-api") };

        new k8s.autoscaling.v2.HorizontalPodAutoscaler(
            `${name}-autoscaler`,
            {
                metadata: meta,
                spec: {
                    scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: FASTAPI_NAME },
                    minReplicas: min,
                    maxReplicas: max,
                    metrics: [
                        {
                            type: "Resource",
                            resource: {
                                name: "cpu",
                                target: { type: "Utilization", averageUtilization: args.targetCpuUtilization ?? 70 },
                            },
                        },
                    ],
                },
            },
            { parent: this, dependsOn: [this.workload], aliases: [{ name: FASTAPI_NAME }] },
        );

        // maxUnavailable 1 (not minAvailable) so a single-replica dev stack can still drain its node.
        new k8s.policy.v1.PodDisruptionBudget(
            `${name}-disruption-budget`,
            { metadata: meta, spec: { maxUnavailable: 1, selector: { matchLabels: this.workload.selector } } },
            { parent: this, aliases: [{ name: FASTAPI_NAME }] },
        );
        this.registerOutputs({ serviceName: this.serviceName });
    }
}
