import { runProgram, runStack } from "../tools/harness";
import { feastConnection } from "./app-fixtures";
import type { AirflowRelease } from "../config/rules";

const img = (n: string) => `ghcr.io/example-org/fx-ml/fx-airflow-${n}@sha256:${n[0].repeat(64)}`;
const RES = { cpuRequest: "100m", cpuLimit: "1", memory: "1Gi" };

function program(version: AirflowRelease, dataSource: "oanda" | "sample" = "oanda") {
    return () => {
        const pulumi = require("@pulumi/pulumi");
        const { Airflow } = require("../components/apps/airflow");
        const ref = (name: string, key: string) => ({ name: pulumi.output(name), key });
        new Airflow("fx", {
            namespace: "fx-ml",
            images: { scheduler: img("scheduler"), webserver: img("webserver"), worker: img("worker") },
            version,
            connections: {
                sqlAlchemyConn: ref("airflow-connections", "sql-alchemy-conn"),
                resultBackend: ref("airflow-connections", "result-backend"),
                brokerUrl: ref("airflow-connections", "broker-url"),
            },
            keys: {
                fernet: ref("airflow-keys", "fernet-key"),
                webserverSecret: ref("airflow-keys", "webserver-secret-key"),
                jwtSecret: ref("airflow-keys", "jwt-secret"),
            },
            admin: { username: ref("airflow-admin", "username"), password: ref("airflow-admin", "password") },
            tasks: {
                dataSource,
                oandaEnvironment: "practice",
                oanda:
                    dataSource === "oanda"
                        ? { token: ref("oanda", "token"), accountId: ref("oanda", "account-id") }
                        : undefined,
                instruments: ["USD_SGD"],
                marketHolidays: ["2026-12-25"],
                feast: feastConnection(),
                mlflowTrackingUri: "http://mlflow.fx-ml.svc.cluster.local:5000",
            },
            statsd: { host: "statsd-exporter.fx-ml-monitoring.svc.cluster.local", port: 9125 },
            resources: { scheduler: RES, webserver: RES, worker: RES, triggerer: RES, dagProcessor: RES },
            replicas: { webserver: 1, worker: 2, apiWorkers: 3 },
        });
    };
}

const LONG_RUNNING: [string, string][] = [
    ["kubernetes:apps/v1:Deployment", "airflow-scheduler"],
    ["kubernetes:apps/v1:Deployment", "airflow-webserver"],
    ["kubernetes:apps/v1:Deployment", "airflow-triggerer"],
    ["kubernetes:apps/v1:StatefulSet", "airflow-worker"],
];
const main = (r: any) => r.inputs.spec.template.spec.containers[0];
const envOf = (c: any) => Object.fromEntries((c.env ?? []).map((e: any) => [e.name, e.value ?? e.valueFrom]));

describe("airflow", () => {
    test("one ConfigMap of settings and the connection Secret's keys for every pod: CeleryExecutor, StatsD", async () => {
        const run = await runProgram(program("3.3.2"));
        const cm = run.one("kubernetes:core/v1:ConfigMap", "fx-config").inputs.data;
        expect(cm).toMatchObject({
            AIRFLOW__CORE__EXECUTOR: "CeleryExecutor",
            AIRFLOW__API__WORKERS: "3",
            AIRFLOW__METRICS__STATSD_ON: "True",
            AIRFLOW__METRICS__STATSD_HOST: "statsd-exporter.fx-ml-monitoring.svc.cluster.local",
            AIRFLOW__METRICS__STATSD_PORT: "9125",
            AIRFLOW__CORE__HOSTNAME_CALLABLE: "airflow.utils.net.getfqdn",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT: "8793",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL: "http://airflow-webserver.fx-ml.svc.cluster.local:8080/execution/",
        });
        expect(run.ofType("kubernetes:core/v1:Secret")).toEqual([]);
        const all = [...LONG_RUNNING, ["kubernetes:apps/v1:Deployment", "airflow-dag-processor"]];
        for (const [type, name] of [...all, ["kubernetes:batch/v1:Job", "airflow-migrate"]]) {
            const r = run.one(type, name);
            const c = main(r);
            expect(c.envFrom).toEqual([{ configMapRef: { name: "airflow-config" } }]);
            const env = envOf(c);
            expect(env.AIRFLOW__DATABASE__SQL_ALCHEMY_CONN).toEqual({
                secretKeyRef: { name: "airflow-connections", key: "sql-alchemy-conn" },
            });
            expect(env.AIRFLOW__CELERY__BROKER_URL).toEqual({
                secretKeyRef: { name: "airflow-connections", key: "broker-url" },
            });
            expect(env.AIRFLOW__CELERY__RESULT_BACKEND).toEqual({
                secretKeyRef: { name: "airflow-connections", key: "result-backend" },
            });
            expect(env.AIRFLOW__CORE__FERNET_KEY).toEqual({
                secretKeyRef: { name: "airflow-keys", key: "fernet-key" },
            });
            expect(env.AIRFLOW__API__SECRET_KEY).toEqual({
                secretKeyRef: { name: "airflow-keys", key: "webserver-secret-key" },
            });
            expect(env.AIRFLOW__API_AUTH__JWT_SECRET).toEqual({
                secretKeyRef: { name: "airflow-keys", key: "jwt-secret" },
            });
        }
    });

    test("migrations and the admin user run as Jobs before every long-running Airflow pod", async () => {
        const run = await runProgram(program("3.3.2"));
        const migrate = run.one("kubernetes:batch/v1:Job", "airflow-migrate");
        const createUser = run.one("kubernetes:batch/v1:Job", "airflow-create-user");
        expect(main(migrate).args).toEqual(["bash", "-c", "exec airflow db migrate"]);
        expect(main(migrate).image).toBe(img("scheduler"));
        expect(run.dependsOn(createUser, migrate)).toBe(true);
        const cu = main(createUser);
        expect(cu.args[2]).toContain(
            'airflow users create --role Admin --username "$ADMIN_USERNAME" --password "$ADMIN_PASSWORD"',
        );
        expect(envOf(cu).ADMIN_PASSWORD).toEqual({ secretKeyRef: { name: "airflow-admin", key: "password" } });
        for (const [type, name] of [...LONG_RUNNING, ["kubernetes:apps/v1:Deployment", "airflow-dag-processor"]]) {
            const r = run.one(type, name);
            expect([name, run.dependsOn(r, migrate), run.dependsOn(r, createUser)]).toEqual([name, true, true]);
            const init = r.inputs.spec.template.spec.initContainers;
            expect(init.map((c: any) => c.args)).toEqual([
                ["bash", "-c", "exec airflow db check-migrations --migration-wait-timeout=300"],
            ]);
            expect(init[0].image).toBe(main(r).image);
        }
    });

    test("Airflow 3: api-server on 8080 with /api/v2/monitor/health, a dag-processor, FAB auth for the admin Job", async () => {
        const run = await runProgram(program("3.3.2"));
        const ws = main(run.one("kubernetes:apps/v1:Deployment", "airflow-webserver"));
        expect(ws.image).toBe(img("webserver"));
        expect(ws.args).toEqual(["bash", "-c", "exec airflow api-server --port 8080"]);
        for (const p of [ws.startupProbe, ws.readinessProbe]) {
            expect(p.httpGet).toEqual({ path: "/api/v2/monitor/health", port: "http" });
        }
        // Liveness only asks whether the process accepts connections: a database outage must not restart it.
        expect(ws.livenessProbe).toEqual(expect.objectContaining({ tcpSocket: { port: "http" } }));
        const dp = main(run.one("kubernetes:apps/v1:Deployment", "airflow-dag-processor"));
        expect(dp.args).toEqual(["bash", "-c", "exec airflow dag-processor"]);
        expect(dp.livenessProbe.exec.command[2]).toContain("airflow jobs check --job-type DagProcessorJob --local");
        const cm = run.one("kubernetes:core/v1:ConfigMap", "fx-config").inputs.data;
        expect(cm.AIRFLOW__CORE__AUTH_MANAGER).toBe(
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        );
        const svc = run.one("kubernetes:core/v1:Service", "airflow-webserver").inputs.spec;
        expect(svc.ports).toEqual([{ name: "http", port: 8080, targetPort: "http", protocol: "TCP" }]);
    });

    test("Airflow 2: webserver with /health, no dag-processor, no Airflow 3 settings", async () => {
        const run = await runProgram(program("2.10.5"));
        const ws = main(run.one("kubernetes:apps/v1:Deployment", "airflow-webserver"));
        expect(ws.args).toEqual(["bash", "-c", "exec airflow webserver"]);
        expect(ws.readinessProbe.httpGet).toEqual({ path: "/health", port: "http" });
        expect(envOf(ws).AIRFLOW__WEBSERVER__SECRET_KEY).toEqual({
            secretKeyRef: { name: "airflow-keys", key: "webserver-secret-key" },
        });
        expect(envOf(ws).AIRFLOW__API_AUTH__JWT_SECRET).toBeUndefined();
        expect(run.ofType("kubernetes:apps/v1:Deployment", "airflow-dag-processor")).toEqual([]);
        const cm = run.one("kubernetes:core/v1:ConfigMap", "fx-config").inputs.data;
        expect(cm.AIRFLOW__CORE__EXECUTION_API_SERVER_URL).toBeUndefined();
        expect(cm.AIRFLOW__CORE__AUTH_MANAGER).toBeUndefined();
        // Airflow 2's gunicorn webserver takes its worker count from [webserver] workers.
        expect(cm.AIRFLOW__WEBSERVER__WORKERS).toBe("3");
        expect(cm.AIRFLOW__API__WORKERS).toBeUndefined();
    });

    test("the processes that parse the DAG files get the instruments the DAGs map over", async () => {
        const v2 = await runProgram(program("2.10.5"));
        expect(envOf(main(v2.one("kubernetes:apps/v1:Deployment", "airflow-scheduler"))).INSTRUMENTS).toBe("USD_SGD");
        const v3 = await runProgram(program("3.3.2"));
        expect(envOf(main(v3.one("kubernetes:apps/v1:Deployment", "airflow-dag-processor"))).INSTRUMENTS).toBe(
            "USD_SGD",
        );
        // Airflow 3's scheduler parses no DAG file; the workers import them to run tasks.
        expect(envOf(main(v3.one("kubernetes:apps/v1:Deployment", "airflow-scheduler"))).INSTRUMENTS).toBeUndefined();
        for (const run of [v2, v3]) {
            expect(envOf(main(run.one("kubernetes:apps/v1:StatefulSet", "airflow-worker"))).INSTRUMENTS).toBe(
                "USD_SGD",
            );
        }
    });

    test("scheduler and triggerer are probed with `airflow jobs check --local`, workers with celery inspect ping", async () => {
        const run = await runProgram(program("3.3.2"));
        const sch = main(run.one("kubernetes:apps/v1:Deployment", "airflow-scheduler"));
        expect(sch.args).toEqual(["bash", "-c", "exec airflow scheduler"]);
        expect(sch.livenessProbe.exec.command[2]).toContain("airflow jobs check --job-type SchedulerJob --local");
        expect(sch.startupProbe.exec.command[2]).toContain("--job-type SchedulerJob --local");
        const trg = main(run.one("kubernetes:apps/v1:Deployment", "airflow-triggerer"));
        expect(trg.livenessProbe.exec.command[2]).toContain("--job-type TriggererJob --local");
        const wk = main(run.one("kubernetes:apps/v1:StatefulSet", "airflow-worker"));
        expect(wk.livenessProbe.exec.command[2]).toContain(
            "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d celery@$(hostname)",
        );
    });

    test("workers: StatefulSet behind a headless Service serving task logs on 8793, the only pods with OANDA secrets", async () => {
        const run = await runProgram(program("3.3.2"));
        const sts = run.one("kubernetes:apps/v1:StatefulSet", "airflow-worker");
        expect(sts.inputs.spec).toMatchObject({ serviceName: "airflow-worker", replicas: 2 });
        const svc = run.one("kubernetes:core/v1:Service", "airflow-worker").inputs.spec;
        expect(svc.clusterIP).toBe("None");
        expect(svc.ports).toEqual([{ name: "worker-logs", port: 8793, targetPort: "worker-logs", protocol: "TCP" }]);
        const c = main(sts);
        expect(c.image).toBe(img("worker"));
        expect(c.args).toEqual(["bash", "-c", "exec airflow celery worker"]);
        expect(c.ports).toEqual([{ name: "worker-logs", containerPort: 8793, protocol: "TCP" }]);
        expect(c.readinessProbe.tcpSocket).toEqual({ port: "worker-logs" });
        const env = envOf(c);
        expect(env).toMatchObject({
            FX_DATA_SOURCE: "oanda",
            OANDA_ENVIRONMENT: "practice",
            FEAST_REDIS_DB: "0",
            MARKET_HOLIDAYS: "2026-12-25",
        });
        expect(env.OANDA_API_TOKEN).toEqual({ secretKeyRef: { name: "oanda", key: "token" } });
        expect(env.OANDA_ACCOUNT_ID).toEqual({ secretKeyRef: { name: "oanda", key: "account-id" } });
        const others = run.resources.filter(
            (r) => /Deployment|Job$/.test(r.type) && r.name.startsWith("airflow") && r.name !== "airflow-worker",
        );
        expect(others.length).toBeGreaterThanOrEqual(5);
        for (const r of others) expect([r.name, envOf(main(r)).OANDA_API_TOKEN]).toEqual([r.name, undefined]);
    });

    test("several workers: intermediate data in the feast database (FEAST_DB_* by Secret reference), no /data volume", async () => {
        const run = await runProgram(program("3.3.2"));
        const pod = run.one("kubernetes:apps/v1:StatefulSet", "airflow-worker").inputs.spec.template.spec;
        const c = pod.containers[0];
        // Only scratch: logs and /tmp. Nothing a task hands to the next lives on the pod.
        expect(pod.volumes).toEqual([
            { name: "logs", emptyDir: {} },
            { name: "tmp", emptyDir: {} },
        ]);
        expect(c.volumeMounts).toEqual([
            { name: "logs", mountPath: "/opt/airflow/logs" },
            { name: "tmp", mountPath: "/tmp" },
        ]);
        const env = envOf(c);
        expect(env).toMatchObject({
            FEAST_DB_HOST: "fx-postgres-rw.fx-ml.svc.cluster.local",
            FEAST_DB_PORT: "5432",
            FEAST_DB_NAME: "feast",
            FEAST_DB_USER: { secretKeyRef: { name: "pg-feast", key: "username" } },
            FEAST_DB_PASSWORD: { secretKeyRef: { name: "pg-feast", key: "password" } },
        });
        expect(env.FX_DATA_DIR).toBeUndefined();
    });

    test("sample data: FX_DATA_SOURCE=sample and no OANDA env at all", async () => {
        const run = await runProgram(program("3.3.2", "sample"));
        const env = envOf(main(run.one("kubernetes:apps/v1:StatefulSet", "airflow-worker")));
        expect(env.FX_DATA_SOURCE).toBe("sample");
        expect(env.OANDA_API_TOKEN).toBeUndefined();
        // The training task's MLflow client: no usage telemetry out of the cluster.
        expect(env.MLFLOW_DISABLE_TELEMETRY).toBe("true");
    });

    test("Airflow pods run as the image's airflow user with the restricted profile, logs on a scratch volume", async () => {
        const run = await runProgram(program("3.3.2"));
        for (const [type, name] of LONG_RUNNING) {
            const pod = run.one(type, name).inputs.spec.template.spec;
            expect(pod.securityContext).toMatchObject({
                runAsUser: 50000,
                runAsGroup: 0,
                runAsNonRoot: true,
                fsGroup: 0,
            });
            const c = pod.containers[0];
            expect(c.securityContext).toMatchObject({
                allowPrivilegeEscalation: false,
                capabilities: { drop: ["ALL"] },
            });
            expect(c.volumeMounts).toContainEqual({ name: "logs", mountPath: "/opt/airflow/logs" });
            expect(c.resources.limits).toEqual({ cpu: "1", memory: "1Gi" });
        }
    });
});

describe.each([
    ["dev", "384Mi"],
    ["gpu", "768Mi"],
] as const)("%s stack: Airflow's sizes", (stack, memory) => {
    test(`the dag-processor gets the configured memory, ${memory}, as its limit`, async () => {
        const run = await runStack(stack);
        const dagProcessor = run.one("kubernetes:apps/v1:Deployment", "airflow-dag-processor");
        expect(dagProcessor.inputs.spec.template.spec.containers[0].resources.limits.memory).toBe(memory);
    });
});
