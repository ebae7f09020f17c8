import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { AirflowRelease } from "../../config/rules";
import { FeastConnection, feastEnv } from "../data/feast";
import { SecretKeyRef, secretEnv } from "../platform/secrets";
import { execProbe, httpProbe, labels, ResourceSpec, serviceHost, tcpProbe } from "../../lib/k8s";
import { AIRFLOW_USER, ContainerSpec, ScratchVolume, Workload, WorkloadArgs } from "../../lib/workload";
import { APP, ENV, IMAGE_PATHS, MODEL, PORT_NAMES, PORTS } from "../../lib/contracts";

const airflowHome = IMAGE_PATHS.airflowHome;
/** Celery app of the celery provider (Airflow >= 2.7), for `celery inspect ping`. */
const CELERY_APP = "airflow.providers.celery.executors.celery_executor.app";
/** How long init containers wait for `airflow db migrate` to finish. */
const MIGRATION_WAIT_SECONDS = 300;

export interface AirflowArgs {
    namespace: pulumi.Input<string>;
    /** Digest-pinned images: scheduler (also triggerer, dag-processor, migrations), webserver, worker. */
    images: { scheduler: pulumi.Input<string>; webserver: pulumi.Input<string>; worker: pulumi.Input<string> };
    /**
     * Airflow release of the images (config airflowVersion: one config/versions.yaml lists, all 2.x or 3.x); decides
     * webserver vs api-server and the 3.x settings.
     */
    version: AirflowRelease;
    /** The metadata database, result backend and Celery broker URLs, by Secret key (Secrets.connections). */
    connections: { sqlAlchemyConn: SecretKeyRef; resultBackend: SecretKeyRef; brokerUrl: SecretKeyRef };
    keys: { fernet: SecretKeyRef; webserverSecret: SecretKeyRef; jwtSecret: SecretKeyRef };
    admin: { username: SecretKeyRef; password: SecretKeyRef };
    /** Task settings (worker only). */
    tasks: {
        dataSource: "oanda" | "sample";
        oandaEnvironment: "practice" | "live";
        oanda?: { token: SecretKeyRef; accountId: SecretKeyRef };
        instruments: readonly string[];
        /** ISO dates on which the market is closed besides weekends (config marketHolidays): the sample source skips them. */
        marketHolidays: readonly string[];
        feast: FeastConnection;
        mlflowTrackingUri: pulumi.Input<string>;
    };
    statsd: { host: pulumi.Input<string>; port: number };
    resources: {
        scheduler: ResourceSpec;
        webserver: ResourceSpec;
        worker: ResourceSpec;
        triggerer: ResourceSpec;
        /** Airflow 3's standalone DAG processor. */
        dagProcessor: ResourceSpec;
    };
    /**
     * Pods, and worker processes per webserver/api-server pod. `worker` is the count, or the floor when
     * `workerAutoscaled` (KEDA owns the count then).
     */
    replicas: { webserver: number; worker: number; apiWorkers: number; workerAutoscaled?: boolean };
    imagePullSecretName?: pulumi.Input<string>;
}

/** `sh -c` through the image's entrypoint, as the official chart runs its liveness checks. */
function jobsCheck(jobType: string): string[] {
    return [
        "sh",
        "-c",
        `CONNECTION_CHECK_MAX_COUNT=0 AIRFLOW__LOGGING__LOGGING_LEVEL=ERROR exec /entrypoint airflow jobs check --job-type ${jobType} --local`,
    ];
}

/** `airflow <command>` through the official image's entrypoint (dumb-init + /entrypoint), as the chart does. */
const airflowArgs = (command: string) => ["bash", "-c", `exec airflow ${command}`];

/**
 * Apache Airflow with the CeleryExecutor: Redis broker (its own logical db), Postgres metadata DB and result
 * backend. A migration Job and an admin-user Job run before the scheduler, webserver/api-server, Celery workers,
 * triggerer (and, on 3.x, dag-processor) start; every pod shares one ConfigMap and one Secret of settings, and waits
 * for migrations in an init container. Metrics go to the StatsD exporter; workers serve task logs from a
 * StatefulSet behind a headless Service, so the hostname each task records resolves from the webserver.
 */
export class Airflow extends pulumi.ComponentResource {
    public readonly webserverServiceName: pulumi.Output<string>;
    public readonly migrateJob: Workload;
    public readonly createUserJob: Workload;
    /** The long-running workloads, by contracts name. */
    public readonly workloads: Readonly<Record<string, Workload>>;

    constructor(name: string, args: AirflowArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:app:Airflow", name, {}, opts);
        const v3 = args.version.startsWith("3.");
        const ns = pulumi.output(args.namespace);
        const parent = { parent: this };
        const webserverName = APP.airflowWebserver;
        const webserverHost = serviceHost(webserverName, ns);

        // Non-secret settings, shared by every Airflow pod.
        const settings: Record<string, pulumi.Input<string>> = {
            [ENV.airflowHome]: airflowHome,
            AIRFLOW__CORE__EXECUTOR: "CeleryExecutor",
            AIRFLOW__CORE__LOAD_EXAMPLES: "False",
            AIRFLOW__CORE__DAGS_FOLDER: `${airflowHome}/dags`,
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION: "False",
            // Workers record their FQDN (<pod>.airflow-worker.<ns>.svc.cluster.local) with each task; the webserver
            // fetches the task's log from that name on the log-server port.
            AIRFLOW__CORE__HOSTNAME_CALLABLE: "airflow.utils.net.getfqdn",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT: String(PORTS.airflowWorkerLogs),
            AIRFLOW__METRICS__STATSD_ON: "True",
            AIRFLOW__METRICS__STATSD_HOST: args.statsd.host,
            AIRFLOW__METRICS__STATSD_PORT: String(args.statsd.port),
            AIRFLOW__METRICS__STATSD_PREFIX: "airflow",
            AIRFLOW__CELERY__WORKER_CONCURRENCY: "4",
            // Each worker process of the webserver/api-server costs about 250 MiB (bench/results/memory.md).
            [v3 ? "AIRFLOW__API__WORKERS" : "AIRFLOW__WEBSERVER__WORKERS"]: String(args.replicas.apiWorkers),
        };
        if (v3) {
            // `airflow users create` (the admin Job) needs the FAB auth manager, which the official image ships.
            settings.AIRFLOW__CORE__AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager";
            // Task processes on the workers report to the api-server's Execution API.
            settings.AIRFLOW__CORE__EXECUTION_API_SERVER_URL = pulumi.interpolate`http://${webserverHost}:${PORTS.airflowWebserver}/execution/`;
        }
        const configMap = new k8s.core.v1.ConfigMap(
            `${name}-config`,
            {
                metadata: { name: "airflow-config", namespace: args.namespace, labels: labels("airflow", "config") },
                data: settings,
            },
            parent,
        );

        const commonEnv: k8s.types.input.core.v1.EnvVar[] = [
            secretEnv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", args.connections.sqlAlchemyConn),
            secretEnv("AIRFLOW__CELERY__BROKER_URL", args.connections.brokerUrl),
            secretEnv("AIRFLOW__CELERY__RESULT_BACKEND", args.connections.resultBackend),
            secretEnv("AIRFLOW__CORE__FERNET_KEY", args.keys.fernet),
            secretEnv("AIRFLOW__WEBSERVER__SECRET_KEY", args.keys.webserverSecret),
            ...(v3
                ? [
                      secretEnv("AIRFLOW__API__SECRET_KEY", args.keys.webserverSecret),
                      secretEnv("AIRFLOW__API_AUTH__JWT_SECRET", args.keys.jwtSecret),
                  ]
                : []),
        ];
        const envFrom = [{ configMapRef: { name: configMap.metadata.name } }];
        // Airflow writes into its home folder (airflow.cfg on first start, webserver_config.py, logs), as in the official
        // chart: the root filesystem stays writable, logs and /tmp are scratch volumes.
        const scratch: Record<string, ScratchVolume> = {
            logs: { mountPath: `${airflowHome}/logs` },
            tmp: { mountPath: "/tmp" },
        };

        const container = (
            c: Omit<ContainerSpec, "envFrom" | "readOnlyRootFilesystem" | "env"> & { env?: ContainerSpec["env"] },
        ): ContainerSpec => ({
            ...c,
            env: [...commonEnv, ...(c.env ?? [])],
            envFrom,
            readOnlyRootFilesystem: false,
        });
        const waitForMigrations = (image: pulumi.Input<string>, resources: ResourceSpec): ContainerSpec =>
            container({
                name: "wait-for-airflow-migrations",
                image,
                args: airflowArgs(`db check-migrations --migration-wait-timeout=${MIGRATION_WAIT_SECONDS}`),
                resources,
            });
        const common: Pick<
            WorkloadArgs,
            "namespace" | "scratch" | "runAs" | "imagePullSecretName" | "writableRootReason"
        > = {
            namespace: args.namespace,
            scratch,
            writableRootReason:
                "Airflow writes airflow.cfg and webserver_config.py into its home folder on start, as in the official chart",
            runAs: AIRFLOW_USER,
            imagePullSecretName: args.imagePullSecretName,
        };
        const wsOpts = { parent: this, dependsOn: [configMap] };
        const adminEnv = ENV.airflowAdminJob;
        // The DAG files map their tasks over the instruments when they are parsed: the processes that parse them
        // (the scheduler on Airflow 2, the dag-processor on 3, and each worker before it runs a task) get the list.
        const instrumentsEnv = { name: ENV.instruments, value: args.tasks.instruments.join(",") };

        // --- Jobs: the provider waits for each to complete, so everything that dependsOn them starts after. -----
        this.migrateJob = new Workload(
            APP.airflowMigrate,
            {
                ...common,
                component: "db-migration",
                kind: "Job",
                container: container({
                    name: "migrate",
                    image: args.images.scheduler,
                    args: airflowArgs("db migrate"),
                    resources: args.resources.scheduler,
                }),
                job: { backoffLimit: 6, activeDeadlineSeconds: 1200 },
                await: { timeout: "20m" },
            },
            wsOpts,
        );
        this.createUserJob = new Workload(
            APP.airflowCreateUser,
            {
                ...common,
                component: "create-user",
                kind: "Job",
                container: container({
                    name: "create-user",
                    image: args.images.webserver,
                    // The password reaches the command through the environment (a Secret), never the manifest.
                    args: [
                        "bash",
                        "-c",
                        `exec airflow users create --role Admin --username "$${adminEnv.username}" --password "$${adminEnv.password}" --email admin@example.invalid --firstname Airflow --lastname Admin`,
                    ],
                    env: [
                        secretEnv(adminEnv.username, args.admin.username),
                        secretEnv(adminEnv.password, args.admin.password),
                    ],
                    resources: args.resources.webserver,
                }),
                job: { backoffLimit: 6, activeDeadlineSeconds: 900 },
                await: { timeout: "15m" },
            },
            { ...wsOpts, dependsOn: [configMap, this.migrateJob] },
        );
        const after = { parent: this, dependsOn: [configMap, this.migrateJob, this.createUserJob] };

        // --- Long-running pods ----------------------------------------------------------------------------------
        const workloads: Record<string, Workload> = {};
        const schedulerLike = (
            wlName: string,
            component: string,
            command: string,
            jobType: string,
            resources: ResourceSpec,
            env: ContainerSpec["env"] = [],
        ) =>
            new Workload(
                wlName,
                {
                    ...common,
                    component,
                    initContainers: [waitForMigrations(args.images.scheduler, resources)],
                    container: container({
                        name: component,
                        image: args.images.scheduler,
                        args: airflowArgs(command),
                        env,
                        startupProbe: execProbe(jobsCheck(jobType), {
                            periodSeconds: 10,
                            timeoutSeconds: 20,
                            failureThreshold: 6,
                        }),
                        livenessProbe: execProbe(jobsCheck(jobType), {
                            initialDelaySeconds: 10,
                            periodSeconds: 60,
                            timeoutSeconds: 20,
                            failureThreshold: 5,
                        }),
                        resources,
                    }),
                    terminationGracePeriodSeconds: 60,
                },
                after,
            );
        workloads[APP.airflowScheduler] = schedulerLike(
            APP.airflowScheduler,
            "scheduler",
            "scheduler",
            "SchedulerJob",
            args.resources.scheduler,
            v3 ? [] : [instrumentsEnv],
        );
        workloads[APP.airflowTriggerer] = schedulerLike(
            APP.airflowTriggerer,
            "triggerer",
            "triggerer",
            "TriggererJob",
            args.resources.triggerer,
        );
        if (v3) {
            // Airflow 3 parses DAG files in a process of its own.
            workloads[APP.airflowDagProcessor] = schedulerLike(
                APP.airflowDagProcessor,
                "dag-processor",
                "dag-processor",
                "DagProcessorJob",
                args.resources.dagProcessor,
                [instrumentsEnv],
            );
        }

        // Airflow 3: api-server, health under /api/v2/monitor/health. Airflow 2: webserver, /health (always 200 while
        // the webserver answers; the official chart probes it the same way).
        const healthPath = v3 ? "/api/v2/monitor/health" : "/health";
        const webserver = new Workload(
            webserverName,
            {
                ...common,
                component: v3 ? "api-server" : "webserver",
                replicas: args.replicas.webserver,
                initContainers: [waitForMigrations(args.images.webserver, args.resources.webserver)],
                container: container({
                    name: "webserver",
                    image: args.images.webserver,
                    args: airflowArgs(v3 ? `api-server --port ${PORTS.airflowWebserver}` : "webserver"),
                    ports: [{ name: PORT_NAMES.http, containerPort: PORTS.airflowWebserver }],
                    startupProbe: httpProbe(healthPath, PORT_NAMES.http, { periodSeconds: 10, failureThreshold: 12 }),
                    readinessProbe: httpProbe(healthPath, PORT_NAMES.http, { periodSeconds: 10 }),
                    livenessProbe: tcpProbe(PORT_NAMES.http, { failureThreshold: 5 }),
                    resources: args.resources.webserver,
                }),
                service: {
                    ports: [{ name: PORT_NAMES.http, port: PORTS.airflowWebserver, targetPort: PORT_NAMES.http }],
                },
            },
            after,
        );
        workloads[webserverName] = webserver;
        this.webserverServiceName = webserver.serviceName!;

        // Workers: the only pods that run tasks, so the only ones with OANDA credentials and the pipeline's env.
        const t = args.tasks;
        const p = ENV.pipeline;
        const taskEnv: k8s.types.input.core.v1.EnvVar[] = [
            { name: p.dataSource, value: t.dataSource },
            instrumentsEnv,
            { name: ENV.marketHolidays, value: t.marketHolidays.join(",") },
            { name: p.oandaEnvironment, value: t.oandaEnvironment },
            { name: ENV.model.trackingUri, value: t.mlflowTrackingUri },
            { name: ENV.model.name, value: MODEL.name },
            { name: ENV.model.alias, value: MODEL.alias },
            // The training task's MLflow client sends no usage telemetry.
            { name: ENV.mlflowTelemetry.disable, value: "true" },
            // Feast's registry and offline store, and the tasks' intermediate data (candles, feature table): tables
            // of the feast database, so a task reads what another wrote on any worker, on any node; no data volume.
            ...feastEnv(t.feast),
            { name: p.feastRepoPath, value: IMAGE_PATHS.feastRepoAirflowWorker },
            ...(t.oanda
                ? [secretEnv(p.oandaApiToken, t.oanda.token), secretEnv(p.oandaAccountId, t.oanda.accountId)]
                : []),
            // Only signal the main process so Celery's warm shutdown lets running tasks finish.
            { name: ENV.process.dumbInitSetsid, value: "0" },
        ];
        // Kept: not a config range but the wiring of two inputs (config's data source, the Secrets component's
        // OANDA Secret), which only the composition root can get wrong.
        if (t.dataSource === "oanda" && !t.oanda) {
            throw new Error(`Airflow '${name}': tasks.dataSource is "oanda" but no OANDA credentials were given`);
        }
        workloads[APP.airflowWorker] = new Workload(
            APP.airflowWorker,
            {
                ...common,
                component: "worker",
                kind: "StatefulSet",
                replicas: args.replicas.workerAutoscaled ? "autoscaled" : args.replicas.worker,
                minReplicas: args.replicas.worker,
                initContainers: [waitForMigrations(args.images.worker, args.resources.worker)],
                container: container({
                    name: "worker",
                    image: args.images.worker,
                    args: airflowArgs("celery worker"),
                    env: taskEnv,
                    ports: [{ name: PORT_NAMES.workerLogs, containerPort: PORTS.airflowWorkerLogs }],
                    // Ready once the task-log server listens (the headless Service then publishes the pod's name).
                    readinessProbe: tcpProbe(PORT_NAMES.workerLogs, { periodSeconds: 10 }),
                    livenessProbe: execProbe(
                        [
                            "sh",
                            "-c",
                            `CONNECTION_CHECK_MAX_COUNT=0 exec /entrypoint python -m celery --app ${CELERY_APP} inspect ping -d celery@$(hostname)`,
                        ],
                        { initialDelaySeconds: 30, periodSeconds: 60, timeoutSeconds: 20, failureThreshold: 5 },
                    ),
                    resources: args.resources.worker,
                }),
                service: {
                    ports: [
                        {
                            name: PORT_NAMES.workerLogs,
                            port: PORTS.airflowWorkerLogs,
                            targetPort: PORT_NAMES.workerLogs,
                        },
                    ],
                },
                // Warm shutdown: a task may take up to its execution_timeout (20 min in the DAGs) to finish.
                terminationGracePeriodSeconds: 600,
            },
            after,
        );
        this.workloads = workloads;
        this.registerOutputs({ webserverServiceName: this.webserverServiceName });
    }
}
