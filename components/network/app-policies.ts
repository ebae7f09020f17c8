import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { allowFrom, IngressRule, peer, podsLabelled, podsNamed } from "../../lib/netpol";
import { APP, CHART_PODS, PORTS, RELEASES } from "../../lib/contracts";
import { labels } from "../../lib/k8s";

/**
 * Default-deny ingress in every namespace the stack owns, then exactly the application flows the stack needs.
 * Postgres and Redis admit their clients in their own components (components/data/postgres.ts, redis.ts).
 *
 * Ingress only: no egress policies, so pods keep DNS and reach the API server, ACME servers,
 * Hugging Face and OANDA without a list of external CIDRs that would rot. Every pod port listed below is the
 * container port (NetworkPolicies see pod IPs and ports, after the Service's port mapping).
 */

/** Every long-running Airflow pod: each sends StatsD. */
const AIRFLOW = [
    APP.airflowScheduler,
    APP.airflowWebserver,
    APP.airflowWorker,
    APP.airflowTriggerer,
    APP.airflowDagProcessor,
];
/** Pods that call the Airflow 3 execution API on the api-server. */
const EXECUTION_API_CLIENTS = [APP.airflowScheduler, APP.airflowWorker, APP.airflowTriggerer, APP.airflowDagProcessor];

export interface AppNetworkPoliciesArgs {
    /** The pipeline namespace. */
    app: pulumi.Input<string>;
    /** Prometheus, Grafana, the StatsD exporter. */
    monitoring: pulumi.Input<string>;
    /** cert-manager's namespace when the stack installs it. */
    certManager?: pulumi.Input<string>;
    /** The CloudNativePG operator's namespace, and a resource that exists only once the namespace does. */
    cnpgOperator?: { namespace: string; after: pulumi.Resource };
    /** The device plugin's namespace when the stack installs it. */
    devicePlugin?: pulumi.Input<string>;
    /** KEDA's namespace when the Celery workers autoscale (its allows are in components/platform/autoscaling.ts). */
    keda?: pulumi.Input<string>;
    /** Namespace of the ingress controller's pods (config `ingressControllerNamespace`). */
    ingressControllerNamespace: string;
    /** Whether ACME HTTP-01 solver pods must be reachable from the ingress controller. */
    acmeHttp01: boolean;
}

/** Default deny and the application-level allows; see the module comment. */
export class AppNetworkPolicies extends pulumi.ComponentResource {
    constructor(name: string, args: AppNetworkPoliciesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:network:AppNetworkPolicies", name, {}, opts);
        const edge = peer({ namespace: args.ingressControllerNamespace });
        const prometheus = peer({ namespace: args.monitoring, pods: podsNamed(APP.prometheus) });
        const inApp = (...names: string[]) => peer({ namespace: args.app, pods: podsNamed(...names) });

        const owned: [string, pulumi.Input<string> | undefined][] = [
            ["app", args.app],
            ["monitoring", args.monitoring],
            ["cert-manager", args.certManager],
            ["cnpg-operator", args.cnpgOperator?.namespace],
            ["device-plugin", args.devicePlugin],
            ["keda", args.keda],
        ];
        for (const [key, namespace] of owned) {
            if (namespace === undefined) continue;
            // Selects every pod and allows nothing: ingress the policies below do not list is dropped.
            new k8s.networking.v1.NetworkPolicy(
                `${name}-default-deny-${key}`,
                {
                    metadata: {
                        name: "default-deny-ingress",
                        namespace,
                        labels: labels("default-deny", "network-policy"),
                    },
                    spec: { podSelector: {}, policyTypes: ["Ingress"] },
                },
                {
                    parent: this,
                    aliases: [{ name: `default-deny-ingress-${key}` }],
                    dependsOn: key === "cnpg-operator" && args.cnpgOperator ? [args.cnpgOperator.after] : [],
                },
            );
        }

        const allow = (
            policy: string,
            namespace: pulumi.Input<string>,
            pods: ReturnType<typeof podsNamed>,
            app: string,
            rules: IngressRule[],
        ) =>
            allowFrom(
                `${name}-allow-${policy}`,
                { namespace, podSelector: pods, app, rules, policyName: `allow-${policy}` },
                { parent: this, aliases: [{ name: `allow-${policy}` }] },
            );

        // --- pipeline namespace -------------------------------------------------------------------------------
        allow("airflow-webserver", args.app, podsNamed(APP.airflowWebserver), APP.airflowWebserver, [
            { why: "UI through the ingress controller", from: [edge], ports: [PORTS.airflowWebserver] },
            {
                why: "Airflow 3 execution API from the scheduler, workers, triggerer and DAG processor",
                from: [inApp(...EXECUTION_API_CLIENTS)],
                ports: [PORTS.airflowWebserver],
            },
        ]);
        allow("airflow-task-logs", args.app, podsNamed(APP.airflowWorker), APP.airflowWorker, [
            {
                why: "task logs the Celery workers serve to the webserver (the scheduler runs no tasks under CeleryExecutor)",
                from: [inApp(APP.airflowWebserver)],
                ports: [PORTS.airflowWorkerLogs],
            },
        ]);
        allow("mlflow", args.app, podsNamed(APP.mlflow), APP.mlflow, [
            { why: "UI through the ingress controller", from: [edge], ports: [PORTS.mlflow] },
            {
                why: "model registry for FastAPI and training on the workers",
                from: [inApp(APP.fastapi, APP.airflowWorker)],
                ports: [PORTS.mlflow],
            },
            { why: "Prometheus scrape", from: [prometheus], ports: [PORTS.mlflow] },
        ]);
        allow("fastapi", args.app, podsNamed(APP.fastapi), APP.fastapi, [
            { why: "inference API through the ingress controller", from: [edge], ports: [PORTS.fastapi] },
            { why: "Prometheus scrape", from: [prometheus], ports: [PORTS.fastapi] },
        ]);
        // No pipeline component calls FinGPT yet; only Prometheus reaches it.
        allow("fingpt", args.app, podsNamed(APP.fingpt), APP.fingpt, [
            { why: "Prometheus scrape", from: [prometheus], ports: [PORTS.fingpt] },
        ]);
        if (args.acmeHttp01) {
            allow("acme-http01-solver", args.app, podsLabelled(CHART_PODS.acmeSolver), RELEASES.certManager, [
                {
                    why: "ACME HTTP-01 challenges through the ingress controller",
                    from: [edge],
                    ports: [PORTS.acmeSolver],
                },
            ]);
        }

        // --- monitoring namespace -----------------------------------------------------------------------------
        allow("grafana", args.monitoring, podsLabelled(CHART_PODS.grafana), RELEASES.grafana, [
            { why: "UI through the ingress controller", from: [edge], ports: [PORTS.grafana] },
        ]);
        allow("prometheus", args.monitoring, podsNamed(APP.prometheus), APP.prometheus, [
            {
                why: "Grafana's datasource",
                from: [peer({ pods: podsLabelled(CHART_PODS.grafana) })],
                ports: [PORTS.prometheus],
            },
        ]);
        allow("alertmanager", args.monitoring, podsLabelled(CHART_PODS.alertmanager), "alertmanager", [
            { why: "alerts from Prometheus", from: [prometheus], ports: [PORTS.alertmanager] },
        ]);
        allow("kube-state-metrics", args.monitoring, podsLabelled(CHART_PODS.kubeStateMetrics), "kube-state-metrics", [
            { why: "Prometheus scrape", from: [prometheus], ports: [PORTS.kubeStateMetrics] },
        ]);
        allow(
            "statsd-exporter-metrics",
            args.monitoring,
            podsLabelled(CHART_PODS.statsdExporter),
            RELEASES.statsdExporter,
            [{ why: "Prometheus scrape", from: [prometheus], ports: [PORTS.statsdMetrics] }],
        );
        // allowFrom() writes TCP ports; StatsD is UDP, so this one policy spells its port out.
        new k8s.networking.v1.NetworkPolicy(
            `${name}-statsd-exporter-udp`,
            {
                metadata: {
                    name: "statsd-exporter-udp",
                    namespace: args.monitoring,
                    labels: labels(RELEASES.statsdExporter, "network-policy"),
                    annotations: { "fx-ml-pipeline/allows": `StatsD from the Airflow pods (${PORTS.statsd}/UDP)` },
                },
                spec: {
                    podSelector: podsLabelled(CHART_PODS.statsdExporter),
                    policyTypes: ["Ingress"],
                    ingress: [{ from: [inApp(...AIRFLOW)], ports: [{ protocol: "UDP", port: PORTS.statsd }] }],
                },
            },
            { parent: this, aliases: [{ name: "statsd-exporter-udp" }] },
        );

        // --- cert-manager namespace ---------------------------------------------------------------------------
        if (args.certManager !== undefined) {
            // The API server calls the admission webhook from addresses no pod or namespace selector names.
            allow(
                "cert-manager-webhook",
                args.certManager,
                podsLabelled(CHART_PODS.certManagerWebhook),
                RELEASES.certManager,
                [{ why: "admission calls from the API server", from: [], ports: [PORTS.certManagerWebhook] }],
            );
        }
        if (args.cnpgOperator !== undefined) {
            allowFrom(
                "allow-cnpg-webhook",
                {
                    namespace: args.cnpgOperator.namespace,
                    podSelector: podsLabelled(CHART_PODS.cnpgOperator),
                    app: "cloudnative-pg",
                    rules: [{ why: "admission calls from the API server", from: [], ports: [PORTS.cnpgWebhook] }],
                },
                { parent: this, dependsOn: [args.cnpgOperator.after] },
            );
        }
        this.registerOutputs({});
    }
}
