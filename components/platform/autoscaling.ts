import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { allowFrom, peer, podsLabelled } from "../../lib/netpol";
import { SecretKeyRef } from "./secrets";
import { labels } from "../../lib/k8s";
import { HelmCharts } from "../../lib/chart-values";
import { CELERY_QUEUE, CHART_PODS, PORTS } from "../../lib/contracts";

export interface WorkerAutoscalerArgs {
    /** The stack's Helm charts (stack config `chartRepository`). */
    charts: HelmCharts;
    /** KEDA's namespace (Namespaces.keda). */
    kedaNamespace: pulumi.Input<string>;
    /** The pipeline namespace, where the workers and Redis run. */
    namespace: pulumi.Input<string>;
    /** The worker StatefulSet to scale. */
    target: { kind: "StatefulSet" | "Deployment"; name: string };
    /** Floor and ceiling (config airflowWorkerReplicas and airflowWorkerMaxReplicas, validated there). */
    min: number;
    max: number;
    /** Queued tasks per worker KEDA aims for (the trigger's listLength). */
    queueTarget: number;
    /** The Celery broker: Redis host:port, logical database, the password by Secret reference, the Redis pods. */
    redis: {
        address: pulumi.Input<string>;
        db: number;
        password: SecretKeyRef;
        pods: Record<string, string>;
        port: number;
    };
    /** Created after these (the worker StatefulSet, so KEDA never scales what does not exist yet). */
    after?: pulumi.Input<pulumi.Resource>[];
    /** cert-manager's install, when the stack installs it: KEDA's certificates come from it. */
    certManager?: pulumi.Resource;
}

/**
 * Celery workers scaled by queue depth: KEDA (chart, in its own namespace) and a ScaledObject whose `redis` trigger
 * reads the length of the Celery queue list in the broker database, authenticated through a TriggerAuthentication
 * that names the Redis password Secret (never the value). KEDA owns the replica count between `min` and `max`.
 * Its namespace admits only what KEDA needs: the API server to the metrics API server and the admission webhooks,
 * the metrics API server to the operator; the operator may reach Redis.
 */
export class WorkerAutoscaler extends pulumi.ComponentResource {
    public readonly release: k8s.helm.v3.Release;
    public readonly scaledObject: k8s.apiextensions.CustomResource;

    constructor(name: string, args: WorkerAutoscalerArgs, opts?: pulumi.ComponentResourceOptions) {
        super(
            "fx:platform:WorkerAutoscaler",
            name,
            {},
            { ...opts, aliases: [{ type: "fx:app:WorkerAutoscaler" }, ...(opts?.aliases ?? [])] },
        );
        this.release = args.charts.release(
            `${name}-keda`,
            "keda",
            {
                namespace: args.kedaNamespace,
                // Its CRDs and admission webhook must answer before the ScaledObject is applied.
                skipAwait: false,
            },
            { parent: this, dependsOn: args.certManager ? [args.certManager] : [] },
        );

        const meta = (component: string) => ({
            name: args.target.name,
            namespace: args.namespace,
            labels: labels(args.target.name, component),
        });
        const auth = new k8s.apiextensions.CustomResource(
            `${name}-redis-auth`,
            {
                apiVersion: "keda.sh/v1alpha1",
                kind: "TriggerAuthentication",
                metadata: meta("autoscaling"),
                spec: {
                    secretTargetRef: [
                        { parameter: "password", name: args.redis.password.name, key: args.redis.password.key },
                    ],
                },
            },
            { parent: this, dependsOn: [this.release] },
        );
        this.scaledObject = new k8s.apiextensions.CustomResource(
            `${name}-scaledobject`,
            {
                apiVersion: "keda.sh/v1alpha1",
                kind: "ScaledObject",
                metadata: meta("autoscaling"),
                spec: {
                    scaleTargetRef: { apiVersion: "apps/v1", kind: args.target.kind, name: args.target.name },
                    minReplicaCount: args.min,
                    maxReplicaCount: args.max,
                    pollingInterval: 15,
                    // Scale in only after five quiet minutes: a worker stopping waits for its running tasks.
                    cooldownPeriod: 300,
                    triggers: [
                        {
                            type: "redis",
                            metadata: {
                                address: args.redis.address,
                                listName: CELERY_QUEUE,
                                listLength: String(args.queueTarget),
                                databaseIndex: String(args.redis.db),
                            },
                            authenticationRef: { name: auth.metadata.name },
                        },
                    ],
                },
            },
            { parent: this, dependsOn: [this.release, ...(args.after ?? [])] },
        );

        const parent = { parent: this };
        allowFrom(
            "allow-keda-redis",
            {
                namespace: args.namespace,
                app: "keda",
                podSelector: podsLabelled(args.redis.pods),
                rules: [
                    {
                        why: "KEDA reads the Celery queue length",
                        from: [peer({ namespace: args.kedaNamespace, pods: podsLabelled(CHART_PODS.kedaOperator) })],
                        ports: [args.redis.port],
                    },
                ],
            },
            parent,
        );
        // The API server calls the metrics API server (external metrics) and the webhooks from addresses no selector
        // names; the metrics API server asks the operator over gRPC.
        allowFrom(
            "allow-keda-metrics-apiserver",
            {
                namespace: args.kedaNamespace,
                app: "keda",
                podSelector: podsLabelled(CHART_PODS.kedaMetricsApiServer),
                rules: [
                    {
                        why: "external metrics API calls from the API server",
                        from: [],
                        ports: [PORTS.kedaMetricsApiServer],
                    },
                ],
            },
            parent,
        );
        allowFrom(
            "allow-keda-webhooks",
            {
                namespace: args.kedaNamespace,
                app: "keda",
                podSelector: podsLabelled(CHART_PODS.kedaWebhooks),
                rules: [{ why: "admission calls from the API server", from: [], ports: [PORTS.kedaWebhooks] }],
            },
            parent,
        );
        allowFrom(
            "allow-keda-operator",
            {
                namespace: args.kedaNamespace,
                app: "keda",
                podSelector: podsLabelled(CHART_PODS.kedaOperator),
                rules: [
                    {
                        why: "metrics requests from the KEDA metrics API server",
                        from: [peer({ pods: podsLabelled(CHART_PODS.kedaMetricsApiServer) })],
                        ports: [PORTS.kedaOperatorGrpc],
                    },
                ],
            },
            parent,
        );
        this.registerOutputs({});
    }
}
