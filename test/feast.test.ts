import { runProgram, runStack } from "../tools/harness";
import { feastConnection } from "./app-fixtures";

const IMAGE = "localhost:5001/fx-airflow-worker@sha256:" + "d".repeat(64);

describe("feast", () => {
    test("feast apply runs once as a Job against the SQL registry and the Redis online store", async () => {
        const run = await runProgram(() => {
            const { Feast } = require("../components/data/feast");
            new Feast("fx", {
                namespace: "fx-ml",
                image: IMAGE,
                connection: feastConnection(),
                resources: { cpuRequest: "100m", cpuLimit: "1", memory: "1Gi" },
            });
        });
        const job = run.one("kubernetes:batch/v1:Job", "feast-apply");
        const pod = job.inputs.spec.template.spec;
        expect(pod.restartPolicy).toBe("OnFailure");
        const c = pod.containers[0];
        expect(c.image).toBe(IMAGE);
        expect(c.command).toEqual(["feast", "--chdir", "/opt/airflow/feast_repo", "apply"]);
        const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
        expect(env).toMatchObject({
            FEAST_DB_NAME: "feast",
            FEAST_REDIS_DB: "0",
            REDIS_PORT: "6379",
        });
        // The CLI is pointed at the repository (--chdir); nothing in the Job reads FEAST_REPO_PATH.
        expect(env).not.toHaveProperty("FEAST_REPO_PATH");
        // The Airflow image installs its packages in /home/airflow/.local: a HOME of /tmp made `feast` fail with
        // "No module named 'feast'" on the real node.
        expect(env).not.toHaveProperty("HOME");
        expect(pod.securityContext).toMatchObject({ runAsUser: 50000, runAsNonRoot: true });
        expect(env.FEAST_DB_PASSWORD).toEqual({ secretKeyRef: { name: "pg-feast", key: "password" } });
        expect(env.REDIS_PASSWORD).toEqual({ secretKeyRef: { name: "redis-auth", key: "password" } });
        expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
        expect(c.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
    });
});

describe.each(["dev", "gpu"] as const)("%s stack: feast apply", (stack) => {
    test("reaches the stack's Redis (online store db 0) and Postgres feast database, credentials by reference", async () => {
        const run = await runStack(stack);
        const job = run.one("kubernetes:batch/v1:Job", "feast-apply").inputs.spec.template.spec.containers[0];
        const env = Object.fromEntries(job.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
        expect(env).toMatchObject({
            REDIS_HOST: String(run.outputs.redisAddress.value).split(":")[0],
            FEAST_REDIS_DB: "0",
            FEAST_DB_HOST: run.outputs.postgresHost.value,
            FEAST_DB_PORT: String(run.outputs.postgresPort.value),
            FEAST_DB_NAME: "feast",
            REDIS_PASSWORD: { secretKeyRef: { name: "redis-auth", key: "password" } },
            FEAST_DB_PASSWORD: { secretKeyRef: { name: "pg-feast", key: "password" } },
        });
    });
});
