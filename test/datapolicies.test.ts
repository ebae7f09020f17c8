import { runStack, StackRun } from "../tools/harness";
import { admits, Pod, Policy, selects } from "./netpol";

/**
 * The data layer's NetworkPolicies evaluated the way Kubernetes does for one connection: a policy applies to a pod
 * its podSelector selects; the connection is allowed when one ingress rule has a peer matching the client (pod
 * selector in the policy's namespace, or namespace selector + pod selector) and lists the port.
 * Pod labels are those of docs/contracts.md and of the charts that run the pods.
 */

const app = (name: string, namespace = "fx-ml"): Pod => ({
    namespace,
    labels: {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": "fx-ml-pipeline",
        "app.kubernetes.io/part-of": "fx-ml-pipeline",
    },
});
// CloudNativePG instance pods (and its join/initdb Job pods) carry cnpg.io/cluster.
const pgInstance: Pod = {
    namespace: "fx-ml",
    labels: { "cnpg.io/cluster": "fx-postgres", "cnpg.io/podRole": "instance", "cnpg.io/instanceRole": "primary" },
};
// groundhog2k/redis selector labels: chart name + release name.
const redisPod: Pod = {
    namespace: "fx-ml",
    labels: { "app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "fx-redis" },
};
const prometheus: Pod = {
    namespace: "fx-ml-monitoring",
    labels: { "app.kubernetes.io/name": "prometheus", "app.kubernetes.io/component": "server" },
};
const cnpgOperator: Pod = {
    namespace: "cnpg-system",
    labels: { "app.kubernetes.io/name": "cloudnative-pg", "app.kubernetes.io/instance": "cnpg" },
};

const AIRFLOW = [
    "airflow-scheduler",
    "airflow-webserver",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-migrate",
    "airflow-create-user",
];

describe.each(["dev", "gpu"] as const)("data-layer NetworkPolicies on the %s stack", (stack) => {
    let run: StackRun;
    beforeAll(async () => {
        run = await runStack(stack);
    });
    const pgPolicy = () => run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "fx-postgres-ingress").inputs;
    const redisPolicy = () => run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "fx-redis-ingress").inputs;

    test("each policy selects its data pods and nothing else", () => {
        expect(selects(pgPolicy(), pgInstance)).toBe(true);
        expect(selects(pgPolicy(), redisPod)).toBe(false);
        expect(selects(redisPolicy(), redisPod)).toBe(true);
        expect(selects(redisPolicy(), pgInstance)).toBe(false);
        expect(selects(redisPolicy(), app("fastapi"))).toBe(false);
        for (const p of [pgPolicy(), redisPolicy()]) expect(p.spec.policyTypes).toEqual(["Ingress"]);
    });

    test("Postgres admits the Airflow pods and Jobs, MLflow and the Feast apply Job on 5432", () => {
        for (const name of [...AIRFLOW, "mlflow", "feast-apply"]) {
            expect([name, admits(pgPolicy(), app(name), 5432)]).toEqual([name, true]);
        }
    });

    test("Postgres refuses FastAPI, FinGPT, Redis and look-alikes from other namespaces", () => {
        for (const client of [app("fastapi"), app("fingpt"), redisPod, app("airflow-worker", "default")]) {
            expect(admits(pgPolicy(), client, 5432)).toBe(false);
        }
        // Prometheus may scrape, not query.
        expect(admits(pgPolicy(), prometheus, 5432)).toBe(false);
    });

    test("Postgres: instances replicate to each other, the operator reaches status, Prometheus the exporter", () => {
        expect(admits(pgPolicy(), pgInstance, 5432)).toBe(true);
        expect(admits(pgPolicy(), cnpgOperator, 8000)).toBe(true);
        expect(admits(pgPolicy(), cnpgOperator, 5432)).toBe(false);
        expect(admits(pgPolicy(), prometheus, 9187)).toBe(true);
        // A pod named prometheus in the app namespace is not the monitoring Prometheus.
        expect(admits(pgPolicy(), { ...prometheus, namespace: "fx-ml" }, 9187)).toBe(false);
    });

    test("Redis admits FastAPI, the Airflow pods and the Feast apply Job on 6379, and no one else", () => {
        for (const name of ["fastapi", "airflow-scheduler", "airflow-webserver", "airflow-worker", "feast-apply"]) {
            expect([name, admits(redisPolicy(), app(name), 6379)]).toEqual([name, true]);
        }
        for (const client of [app("mlflow"), app("fingpt"), app("airflow-migrate"), pgInstance, prometheus]) {
            expect(admits(redisPolicy(), client, 6379)).toBe(false);
        }
        expect(admits(redisPolicy(), app("fastapi", "default"), 6379)).toBe(false);
    });

    test("Prometheus may scrape the Redis exporter, and only the exporter port", () => {
        expect(admits(redisPolicy(), prometheus, 9121)).toBe(true);
        expect(admits(redisPolicy(), app("fastapi"), 9121)).toBe(false);
    });
});

describe("NetworkPolicy helper", () => {
    test("a peer without pods or namespace and a policy without rules are refused", () => {
        const { peer, allowFrom, podsNamed } = require("../lib/netpol");
        expect(() => peer({})).toThrow(/would admit everyone/);
        expect(() => podsNamed()).toThrow(/at least one/);
        expect(() => allowFrom("x", { namespace: "n", app: "a", podSelector: {}, rules: [] })).toThrow(
            /no rules would deny all ingress/,
        );
    });

    test("rules are TCP unless they say otherwise, and say why in an annotation", async () => {
        const run = await runStack("dev", {
            program: () => {
                const { allowFrom, peer, podsNamed } = require("../lib/netpol");
                allowFrom("statsd-in", {
                    namespace: "fx-ml-monitoring",
                    app: "statsd-exporter",
                    podSelector: podsNamed("statsd-exporter"),
                    rules: [
                        { why: "StatsD", from: [peer({ namespace: "fx-ml" })], ports: [9125], protocol: "UDP" },
                        { why: "scrape", from: [peer({ pods: podsNamed("prometheus") })], ports: [9102] },
                    ],
                });
            },
        });
        const p = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "statsd-in");
        expect(p.inputs.spec.ingress.map((r: any) => r.ports)).toEqual([
            [{ protocol: "UDP", port: 9125 }],
            [{ protocol: "TCP", port: 9102 }],
        ]);
        expect(p.inputs.spec.ingress[0].from).toEqual([
            { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "fx-ml" } } },
        ]);
        expect(p.inputs.metadata.annotations["fx-ml-pipeline/allows"]).toBe("StatsD (9125); scrape (9102)");
    });

    test("the evaluator above is not vacuous: an allow-all peer admits a stranger", () => {
        const policy: Policy = {
            metadata: { namespace: "fx-ml" },
            spec: {
                podSelector: {},
                ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 1, protocol: "TCP" }] }],
            },
        };
        expect(admits(policy, app("anyone"), 1)).toBe(true);
        expect(admits(policy, app("anyone"), 2)).toBe(false);
    });
});
