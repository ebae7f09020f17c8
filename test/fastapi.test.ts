import { runProgram, runStack } from "../tools/harness";
import { feastConnection } from "./app-fixtures";

const IMAGE = "localhost:5001/fx-fastapi@sha256:" + "c".repeat(64);

function program(replicas = { min: 2, max: 6 }) {
    return () => {
        const { Fastapi } = require("../components/apps/fastapi");
        new Fastapi("fx", {
            namespace: "fx-ml",
            image: IMAGE,
            resources: { cpuRequest: "250m", cpuLimit: "1", memory: "512Mi" },
            replicas,
            workers: 3,
            feast: feastConnection(),
            mlflowTrackingUri: "http://mlflow.fx-ml.svc.cluster.local:5000",
            instruments: ["USD_SGD", "EUR_USD"],
            marketHolidays: ["2026-12-25", "2027-01-01"],
        });
    };
}

const envOf = (c: any) => Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));

describe("fastapi", () => {
    test("gunicorn on 8000 from the fastapi image, env per contracts with credentials by Secret reference", async () => {
        const run = await runProgram(program());
        const c = run.one("kubernetes:apps/v1:Deployment", "fastapi").inputs.spec.template.spec.containers[0];
        expect(c.image).toBe(IMAGE);
        expect(c.command).toEqual(["gunicorn", "-c", "/app/gunicorn.conf.py", "app.main:app"]);
        expect(c.ports).toEqual([{ name: "http", containerPort: 8000, protocol: "TCP" }]);
        const env = envOf(c);
        expect(env).toMatchObject({
            REDIS_HOST: "fx-redis.fx-ml.svc.cluster.local",
            REDIS_PORT: "6379",
            FEAST_REDIS_DB: "0",
            MLFLOW_TRACKING_URI: "http://mlflow.fx-ml.svc.cluster.local:5000",
            MODEL_NAME: "fx-usdsgd-predictor",
            MODEL_ALIAS: "champion",
            WEB_CONCURRENCY: "3",
            INSTRUMENTS: "USD_SGD,EUR_USD",
            FEATURE_MAX_AGE_SECONDS: "7200",
            MARKET_HOLIDAYS: "2026-12-25,2027-01-01",
        });
        expect(env.REDIS_PASSWORD).toEqual({ secretKeyRef: { name: "redis-auth", key: "password" } });
        // FastAPI reads the online store only: least privilege keeps the registry's Postgres credentials out.
        expect(Object.keys(env).filter((k) => k.startsWith("FEAST_DB_") || k === "FEAST_REPO_PATH")).toEqual([]);
    });

    test("readiness on /health (model + Redis), liveness on /livez, metrics annotated", async () => {
        const run = await runProgram(program());
        const dep = run.one("kubernetes:apps/v1:Deployment", "fastapi");
        const c = dep.inputs.spec.template.spec.containers[0];
        expect(c.readinessProbe.httpGet).toEqual({ path: "/health", port: "http" });
        expect(c.livenessProbe.httpGet).toEqual({ path: "/livez", port: "http" });
        expect(dep.inputs.spec.template.metadata.annotations["prometheus.io/port"]).toBe("8000");
        // Readiness waits for a model trained after the deploy, so `pulumi up` must not wait for it.
        expect(dep.inputs.metadata.annotations).toEqual({ "pulumi.com/skipAwait": "true" });
    });

    test("HPA autoscaling/v2 on CPU owns the replica count; rolling updates keep every replica; PDB allows drains", async () => {
        const run = await runProgram(program({ min: 2, max: 6 }));
        const dep = run.one("kubernetes:apps/v1:Deployment", "fastapi");
        expect(dep.inputs.spec.replicas).toBeUndefined();
        expect(dep.inputs.spec.strategy).toEqual({
            type: "RollingUpdate",
            rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
        });
        const hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "fx-autoscaler").inputs.spec;
        expect(hpa.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: "fastapi" });
        expect([hpa.minReplicas, hpa.maxReplicas]).toEqual([2, 6]);
        expect(hpa.metrics[0].resource).toEqual({
            name: "cpu",
            target: { type: "Utilization", averageUtilization: 70 },
        });
        const pdb = run.one("kubernetes:policy/v1:PodDisruptionBudget", "fx-disruption-budget").inputs.spec;
        expect(pdb.maxUnavailable).toBe(1);
        expect(pdb.selector.matchLabels).toEqual(dep.inputs.spec.selector.matchLabels);
        const svc = run.one("kubernetes:core/v1:Service", "fastapi");
        expect(svc.inputs.spec.ports[0]).toMatchObject({ port: 8000, targetPort: "http" });
    });
});

describe.each(["dev", "gpu"] as const)("%s stack: FastAPI's size", (stack) => {
    test("worker processes and memory come from the stack config", async () => {
        const run = await runStack(stack);
        const c = run.one("kubernetes:apps/v1:Deployment", "fastapi").inputs.spec.template.spec.containers[0];
        expect(envOf(c).WEB_CONCURRENCY).toBe(String(run.config.fastapiWorkers));
        // marketHolidays defaults to none: an empty MARKET_HOLIDAYS, which ServiceSettings reads as no holidays.
        expect(envOf(c).MARKET_HOLIDAYS).toBe("");
        expect(c.resources.limits.memory).toBe(run.config.fastapiMemory);
    });
});
