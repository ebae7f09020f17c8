import { findPlaintext, reveal, runStack } from "../tools/harness";
import * as pulumi from "@pulumi/pulumi";
import { postgresLogin, redisUrl, toUrlSafeBase64 } from "../components/platform/secrets";

describe("secrets", () => {
    test("the Fernet key is URL-safe base64 of 32 random bytes", async () => {
        const run = await runStack("dev");
        const bytes = run.one("random:index/randomBytes:RandomBytes", /fernet/);
        expect(bytes.inputs.length).toBe(32);
        const keys = reveal(run.one("kubernetes:core/v1:Secret", /airflow-keys/).inputs.stringData);
        expect(keys["fernet-key"]).toMatch(/^[A-Za-z0-9_-]+=*$/);
        expect(keys["fernet-key"]).toBe(toUrlSafeBase64(bytes.state.base64.value ?? bytes.state.base64));
        expect(keys["webserver-secret-key"]).toContain("SENTINEL-random-");
    });

    test("toUrlSafeBase64 maps + and / and keeps padding", () => {
        expect(toUrlSafeBase64("ab+/cd+/==")).toBe("ab-_cd-_==");
    });

    test.each(["airflow", "mlflow", "feast"])(
        "database role %s has its own basic-auth Secret and password",
        async (role) => {
            const run = await runStack("gpu");
            const s = run.one("kubernetes:core/v1:Secret", `fx-pg-${role}`);
            expect(s.inputs.type).toBe("kubernetes.io/basic-auth");
            const data = reveal(s.inputs.stringData);
            expect(data.username).toBe(role);
            expect(data.password).toBe(
                reveal(run.one("random:index/randomPassword:RandomPassword", `fx-pg-${role}`).state.result),
            );
        },
    );

    test("OANDA credentials exist only when the stack collects live candles", async () => {
        const gpu = await runStack("gpu");
        const oanda = reveal(gpu.one("kubernetes:core/v1:Secret", "fx-oanda").inputs.stringData);
        expect(oanda.token).toBe(gpu.config.oandaToken);
        const dev = await runStack("dev");
        expect(dev.ofType("kubernetes:core/v1:Secret", "fx-oanda")).toEqual([]);
    });

    test("a registry with credentials gets a dockerconfigjson pull secret; kind's registry does not", async () => {
        const gpu = await runStack("gpu");
        const pull = gpu.one("kubernetes:core/v1:Secret", "fx-registry-pull");
        expect(pull.inputs.type).toBe("kubernetes.io/dockerconfigjson");
        const cfg = JSON.parse(reveal(pull.inputs.stringData)[".dockerconfigjson"]);
        expect(Object.keys(cfg.auths)).toEqual(["ghcr.io"]);
        const dev = await runStack("dev");
        expect(dev.ofType("kubernetes:core/v1:Secret", "fx-registry-pull")).toEqual([]);
    });
});

describe("connection Secrets, composed where the passwords live", () => {
    test.each(["dev", "gpu"] as const)(
        "%s: Airflow's database, result backend and Celery broker (Redis db 1), MLflow's backend store; all secret",
        async (stack) => {
            const run = await runStack(stack);
            const generated = (name: string) =>
                reveal(run.one("random:index/randomPassword:RandomPassword", name).state.result);
            const [airflowPw, mlflowPw, redisPw] = ["fx-pg-airflow", "fx-pg-mlflow", "fx-redis"].map(generated);
            const airflow = run.one("kubernetes:core/v1:Secret", "fx-airflow-connections");
            expect(airflow.inputs.metadata.name).toBe("airflow-connections");
            expect(findPlaintext(airflow.inputs.stringData, run.sentinels)).toEqual([]);
            const pg = "fx-postgres-rw.fx-ml.svc.cluster.local:5432";
            expect(reveal(airflow.inputs.stringData)).toEqual({
                "sql-alchemy-conn": `postgresql+psycopg2://airflow:${encodeURIComponent(airflowPw)}@${pg}/airflow`,
                "result-backend": `db+postgresql://airflow:${encodeURIComponent(airflowPw)}@${pg}/airflow`,
                "broker-url": `redis://:${encodeURIComponent(redisPw)}@fx-redis.fx-ml.svc.cluster.local:6379/1`,
            });
            const mlflow = run.one("kubernetes:core/v1:Secret", "fx-mlflow-backend-store");
            expect(mlflow.inputs.metadata.name).toBe("mlflow-backend-store");
            expect(findPlaintext(mlflow.inputs.stringData, run.sentinels)).toEqual([]);
            expect(reveal(mlflow.inputs.stringData)).toEqual({
                uri: `postgresql+psycopg2://mlflow:${encodeURIComponent(mlflowPw)}@${pg}/mlflow`,
            });
        },
    );

    test("the Airflow and MLflow components get Secret keys, never a password", async () => {
        const run = await runStack("gpu");
        for (const type of ["fx:app:Airflow", "fx:app:Mlflow"]) {
            expect(findPlaintext(run.one(type, "fx").inputs, run.sentinels)).toEqual([]);
        }
        const mlflow = run.one("kubernetes:apps/v1:Deployment", "mlflow").inputs.spec.template.spec.containers[0];
        expect(mlflow.env).toContainEqual({
            name: "MLFLOW_BACKEND_STORE_URI",
            valueFrom: { secretKeyRef: { name: "mlflow-backend-store", key: "uri" } },
        });
    });
});

describe("connection strings", () => {
    const value = (o: pulumi.Output<string>) => new Promise<string>((resolve) => o.apply(resolve));

    test("a password with URL characters is encoded, in the Redis URL and the Postgres login", async () => {
        expect(await value(redisUrl("p@ss/w:rd", "fx-redis.fx-ml.svc.cluster.local:6379", 1))).toBe(
            "redis://:p%40ss%2Fw%3Ard@fx-redis.fx-ml.svc.cluster.local:6379/1",
        );
        expect(await value(postgresLogin("mlflow", "a b#c", { host: "pg", port: 5432 }))).toBe(
            "mlflow:a%20b%23c@pg:5432/mlflow",
        );
    });
});
