import { reveal, runStack, StackRun } from "../tools/harness";
import { allowed, matches, Pod } from "./netpol";

// ---------------------------------------------------------------------------------------------------------------
// The pods of the stack, by the labels docs/contracts.md fixes (and the charts set).
// ---------------------------------------------------------------------------------------------------------------

const APP_NS = "fx-ml";
const MON_NS = "fx-ml-monitoring";
const named = (namespace: string, name: string, extra: Record<string, string> = {}): Pod => ({
    namespace,
    labels: { "app.kubernetes.io/name": name, "app.kubernetes.io/instance": "fx-ml-pipeline", ...extra },
});
const P = {
    traefik: { namespace: "traefik", labels: { "app.kubernetes.io/name": "traefik" } },
    webserver: named(APP_NS, "airflow-webserver"),
    scheduler: named(APP_NS, "airflow-scheduler"),
    worker: named(APP_NS, "airflow-worker"),
    triggerer: named(APP_NS, "airflow-triggerer"),
    dagProcessor: named(APP_NS, "airflow-dag-processor"),
    mlflow: named(APP_NS, "mlflow"),
    fastapi: named(APP_NS, "fastapi"),
    fingpt: named(APP_NS, "fingpt"),
    postgres: { namespace: APP_NS, labels: { "cnpg.io/cluster": "fx-postgres", "cnpg.io/instanceRole": "primary" } },
    redis: {
        namespace: APP_NS,
        labels: { "app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "fx-redis" },
    },
    acmeSolver: { namespace: APP_NS, labels: { "acme.cert-manager.io/http01-solver": "true" } },
    prometheus: named(MON_NS, "prometheus", {
        "app.kubernetes.io/instance": "prometheus",
        "app.kubernetes.io/component": "server",
    }),
    grafana: named(MON_NS, "grafana", { "app.kubernetes.io/instance": "grafana" }),
    statsd: named(MON_NS, "prometheus-statsd-exporter", { "app.kubernetes.io/instance": "statsd-exporter" }),
    alertmanager: named(MON_NS, "alertmanager", { "app.kubernetes.io/instance": "prometheus" }),
    kubeStateMetrics: named(MON_NS, "kube-state-metrics", { "app.kubernetes.io/instance": "prometheus" }),
    certManagerWebhook: {
        namespace: "cert-manager",
        labels: { "app.kubernetes.io/instance": "cert-manager", "app.kubernetes.io/component": "webhook" },
    },
    cnpgOperator: { namespace: "cnpg-system", labels: { "app.kubernetes.io/name": "cloudnative-pg" } },
    devicePlugin: { namespace: "nvidia-device-plugin", labels: { "app.kubernetes.io/name": "nvidia-device-plugin" } },
    apiServer: { namespace: "kube-system", labels: { component: "kube-apiserver" } },
    stranger: { namespace: "default", labels: { app: "debug" } },
};
type PodKey = keyof typeof P;

/** [from, to, port, protocol] flows the stack needs. */
type Flow = [PodKey, PodKey, number, ("TCP" | "UDP")?];
const NEEDED: Flow[] = [
    ["traefik", "webserver", 8080],
    ["traefik", "mlflow", 5000],
    ["traefik", "fastapi", 8000],
    ["traefik", "grafana", 3000],
    ["prometheus", "fastapi", 8000],
    ["prometheus", "mlflow", 5000],
    ["prometheus", "fingpt", 8001],
    ["prometheus", "statsd", 9102],
    ["prometheus", "alertmanager", 9093],
    ["prometheus", "kubeStateMetrics", 8080],
    ["prometheus", "postgres", 9187],
    ["prometheus", "redis", 9121],
    ["webserver", "worker", 8793],
    ["scheduler", "webserver", 8080],
    ["worker", "webserver", 8080],
    ["triggerer", "webserver", 8080],
    ["dagProcessor", "webserver", 8080],
    ["fastapi", "mlflow", 5000],
    ["worker", "mlflow", 5000],
    ["scheduler", "statsd", 9125, "UDP"],
    ["worker", "statsd", 9125, "UDP"],
    ["webserver", "statsd", 9125, "UDP"],
    ["triggerer", "statsd", 9125, "UDP"],
    ["dagProcessor", "statsd", 9125, "UDP"],
    ["grafana", "prometheus", 9090],
    ["worker", "postgres", 5432],
    ["scheduler", "postgres", 5432],
    ["webserver", "postgres", 5432],
    ["triggerer", "postgres", 5432],
    ["dagProcessor", "postgres", 5432],
    ["mlflow", "postgres", 5432],
    ["fastapi", "redis", 6379],
    ["worker", "redis", 6379],
    ["apiServer", "certManagerWebhook", 10250],
    ["apiServer", "cnpgOperator", 9443],
];

/** Flows no one needs: each must be dropped. */
const UNLISTED: Flow[] = [
    ["fastapi", "postgres", 5432],
    ["fastapi", "webserver", 8080],
    ["fastapi", "fingpt", 8001],
    ["worker", "fastapi", 8000],
    ["traefik", "prometheus", 9090],
    ["traefik", "fingpt", 8001],
    ["traefik", "worker", 8793],
    ["traefik", "postgres", 5432],
    ["stranger", "mlflow", 5000],
    ["stranger", "grafana", 3000],
    ["stranger", "redis", 6379],
    ["prometheus", "fastapi", 9999],
    ["worker", "statsd", 9125, "TCP"],
    ["mlflow", "statsd", 9125, "UDP"],
    ["mlflow", "worker", 8793],
    ["webserver", "scheduler", 8793],
    ["grafana", "fastapi", 8000],
    ["stranger", "certManagerWebhook", 9402],
];

describe("NetworkPolicies: default deny, then exactly the flows the stack needs", () => {
    let dev: StackRun;
    let gpu: StackRun;
    beforeAll(async () => {
        dev = await runStack("dev");
        gpu = await runStack("gpu");
    });
    const both = () =>
        [
            ["dev", dev],
            ["gpu", gpu],
        ] as const;

    test("every namespace the program owns denies ingress by default", () => {
        for (const [, run] of both()) {
            const owned = run.ofType("kubernetes:core/v1:Namespace").map((n) => n.inputs.metadata.name);
            const denies = run
                .ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                .map((r) => reveal(r.inputs))
                .filter((p) => Object.keys(p.spec.podSelector).length === 0 && p.spec.ingress === undefined)
                .filter((p) => p.spec.policyTypes.includes("Ingress"))
                .map((p) => p.metadata.namespace);
            expect(denies.sort()).toEqual([...owned].sort());
        }
    });

    // Every row gets its protocol: jest hands a callback with more parameters than the row a `done` callback.
    const rows = (flows: Flow[]) => flows.map(([f, t, port, protocol]) => [f, t, port, protocol ?? "TCP"] as const);

    test.each(rows(NEEDED))("allowed: %s -> %s:%d/%s", (from, to, port, protocol) => {
        for (const [stack, run] of both()) {
            expect([stack, allowed(run, P[from], P[to], port, protocol)]).toEqual([stack, true]);
        }
    });

    test.each(rows(UNLISTED))("denied: %s -> %s:%d/%s", (from, to, port, protocol) => {
        for (const [stack, run] of both()) {
            expect([stack, allowed(run, P[from], P[to], port, protocol)]).toEqual([stack, false]);
        }
    });

    test("ACME HTTP-01 solver pods are reachable from the ingress controller only where the issuer is ACME", () => {
        expect(allowed(gpu, P.traefik, P.acmeSolver, 8089)).toBe(true);
        expect(allowed(gpu, P.stranger, P.acmeSolver, 8089)).toBe(false);
        expect(allowed(dev, P.traefik, P.acmeSolver, 8089)).toBe(false);
    });

    test("the Barman Cloud plugin (gpu backups) admits the CloudNativePG operator on its gRPC port, and no one else", () => {
        const plugin = {
            namespace: "cnpg-system",
            labels: { "app.kubernetes.io/name": "plugin-barman-cloud", "app.kubernetes.io/instance": "barman-cloud" },
        };
        expect(allowed(gpu, P.cnpgOperator, plugin, 9090)).toBe(true);
        expect(allowed(gpu, P.postgres, plugin, 9090)).toBe(false);
        expect(allowed(gpu, P.stranger, plugin, 9090)).toBe(false);
        expect(allowed(gpu, P.cnpgOperator, plugin, 8080)).toBe(false);
        // No policy of either stack restricts egress: the instances' sidecars reach the object store.
        for (const [, run] of both()) {
            const types = run
                .ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                .flatMap((r) => reveal(r.inputs).spec.policyTypes);
            expect([...new Set(types)]).toEqual(["Ingress"]);
        }
        expect(dev.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy", "fx-barman-cloud-ingress")).toEqual([]);
    });

    test("the device plugin's namespace admits nothing (gpu)", () => {
        expect(allowed(gpu, P.prometheus, P.devicePlugin, 2112)).toBe(false);
        expect(allowed(gpu, P.apiServer, P.devicePlugin, 443)).toBe(false);
    });

    test("the ingress controller's namespace is config: another namespace no longer reaches the UIs", async () => {
        const run = await runStack("dev", { config: { ingressControllerNamespace: "haproxy" } });
        const haproxy = { namespace: "haproxy", labels: { app: "haproxy" } };
        expect(allowed(run, haproxy, P.fastapi, 8000)).toBe(true);
        expect(allowed(run, P.traefik, P.fastapi, 8000)).toBe(false);
    });

    test("the modelled pods carry the labels the workloads really give their pods", () => {
        const modelled = [
            "webserver",
            "scheduler",
            "worker",
            "triggerer",
            "dagProcessor",
            "mlflow",
            "fastapi",
            "fingpt",
        ] as const;
        for (const [stack, run] of both()) {
            const seen = new Set<string>();
            for (const w of run.resources.filter((r) => /apps\/v1:(Deployment|StatefulSet)$/.test(r.type))) {
                const real = reveal(w.inputs);
                const key = modelled.find(
                    (k) =>
                        P[k].labels["app.kubernetes.io/name"] ===
                        real.spec.template.metadata?.labels?.["app.kubernetes.io/name"],
                );
                if (!key) continue;
                expect(real.metadata.namespace).toBe(P[key].namespace);
                expect(real.spec.template.metadata.labels).toMatchObject(P[key].labels);
                seen.add(key);
            }
            // Every modelled workload exists (FinGPT only where it is enabled), so the check above is not vacuous.
            expect([...seen].sort()).toEqual(modelled.filter((k) => stack === "gpu" || k !== "fingpt").sort());
        }
    });

    test("the evaluator models Kubernetes semantics: an unselected pod accepts all, a selector needs every label", () => {
        // No policy selects pods in an unowned namespace: everything reaches them.
        expect(allowed(dev, P.stranger, P.stranger, 1234)).toBe(true);
        expect(
            matches({ matchLabels: { a: "1" }, matchExpressions: [{ key: "b", operator: "Exists" }] }, { a: "1" }),
        ).toBe(false);
        expect(matches({ matchExpressions: [{ key: "b", operator: "NotIn", values: ["x"] }] }, { a: "1" })).toBe(true);
        // A pod in the pipeline namespace wearing Grafana's labels is not Grafana: namespace selectors matter.
        const fake = { namespace: APP_NS, labels: P.grafana.labels };
        expect(allowed(dev, fake, P.prometheus, 9090)).toBe(false);
    });
});
