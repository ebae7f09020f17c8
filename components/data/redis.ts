import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { allowFrom, peer, podsLabelled, podsNamed } from "../../lib/netpol";
import { APP, CHART_PODS, ENV, PORTS, REDIS_DBS, RELEASES, SERVICES } from "../../lib/contracts";
import { SecretKeyRef, secretEnv } from "../platform/secrets";
import { serviceHost } from "../../lib/k8s";
import { HelmCharts } from "../../lib/chart-values";

/** Pods that talk to Redis: FastAPI (online features), the Airflow pods (Celery broker) and the Feast apply Job. */
export const REDIS_CLIENTS = [
    APP.fastapi,
    APP.airflowScheduler,
    APP.airflowWebserver,
    APP.airflowWorker,
    APP.airflowTriggerer,
    APP.feastApply,
] as const;

export interface RedisArgs {
    /** The stack's Helm charts (stack config `chartRepository`). */
    charts: HelmCharts;
    namespace: pulumi.Input<string>;
    /** Namespace of Prometheus, admitted to the exporter port. */
    monitoringNamespace: pulumi.Input<string>;
    /** The password (Secrets.redisPassword), for the probes and the exporter. */
    password: SecretKeyRef;
    /** The Secret whose only file is `requirepass <password>` (Secrets.redisConfigSecretName). */
    configSecretName: pulumi.Input<string>;
    /** Tag of the official redis image, one of the 7.x releases config/versions.yaml lists. */
    version: string;
    storage: { size: string; storageClass?: string };
    /** Protect the release and keep its data volume when the stack is destroyed: see docs/data.md. */
    retainOnDelete: boolean;
}

/**
 * Redis for the Feast online store (db 0) and the Celery broker (db 1): the official `redis` image with the
 * append-only file on, a password from a Secret and an oliver006/redis_exporter sidecar.
 */
export class Redis extends pulumi.ComponentResource {
    /** In-cluster host of the Service, `fx-redis.<ns>.svc.cluster.local`. */
    public readonly host: pulumi.Output<string>;
    public readonly port: number = PORTS.redis;
    /** `host:port`, as Feast expects it. */
    public readonly address: pulumi.Output<string>;
    public readonly feastDb: number = REDIS_DBS.feastOnline;
    public readonly brokerDb: number = REDIS_DBS.celeryBroker;
    public readonly release: k8s.helm.v3.Release;
    /** Labels of the Redis pod, for NetworkPolicies that admit a client of their own. */
    public readonly pods: Record<string, string> = CHART_PODS.redis;

    constructor(name: string, args: RedisArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:data:Redis", name, {}, opts);

        this.release = args.charts.release(
            `${name}-redis`,
            "redis",
            {
                namespace: args.namespace,
                values: {
                    fullnameOverride: RELEASES.redis,
                    image: { tag: args.version },
                    // Files of this Secret are appended to redis.conf: `requirepass`.
                    extraSecretRedisConfigs: args.configSecretName,
                    // redis-cli (the chart's probes) and the exporter read the password from their environment.
                    env: [secretEnv(ENV.redisChart.cliAuth, args.password)],
                    metrics: { exporter: { env: [secretEnv(ENV.redisChart.exporterPassword, args.password)] } },
                    storage: {
                        requestedSize: args.storage.size,
                        className: args.storage.storageClass,
                        // helm.sh/resource-policy: keep on the PVC; a reinstall of the release adopts it again.
                        keepPvc: args.retainOnDelete,
                    },
                },
            },
            // `pulumi destroy` refuses while the release is protected; `keepPvc` keeps the data if it is uninstalled.
            { parent: this, protect: args.retainOnDelete },
        );

        this.host = serviceHost(SERVICES.redis, args.namespace);
        this.address = pulumi.interpolate`${this.host}:${PORTS.redis}`;

        allowFrom(
            `${name}-redis-ingress`,
            {
                namespace: args.namespace,
                app: RELEASES.redis,
                podSelector: podsLabelled(this.pods),
                rules: [
                    {
                        why: "online features, Celery broker and feast apply",
                        from: [peer({ pods: podsNamed(...REDIS_CLIENTS) })],
                        ports: [PORTS.redis],
                    },
                    {
                        why: "Prometheus scrapes the exporter sidecar",
                        from: [peer({ namespace: args.monitoringNamespace, pods: podsNamed(APP.prometheus) })],
                        ports: [PORTS.redisExporter],
                    },
                ],
            },
            { parent: this },
        );

        this.registerOutputs({ host: this.host, port: this.port, address: this.address });
    }
}
