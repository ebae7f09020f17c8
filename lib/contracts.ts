/**
 * The contracts between the parts of fx-ml-pipeline, each written once: service and workload names, ports, the labels
 * pods are selected by, Secret names and keys, the registered model, Feast's paths, Redis' logical databases and every
 * environment variable name a component sets. Components, NetworkPolicies, the Ingresses and the monitoring scrape
 * config import them from here; docs/contracts.md explains them for people.
 *
 * test/contracts.test.ts holds the rest of the repository to this module: no port number or shared env name written
 * anywhere else in the TypeScript sources, the env names each container gets read by the Python service it runs (its
 * pydantic-settings aliases, by introspection) or by a third party named below, every required setting set, and
 * docs/contracts.md, monitoring/metrics-catalogue.yaml, charts-values/ and the Dockerfiles stating the same ports.
 */

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

/**
 * The `app.kubernetes.io/name` of each workload the program runs (pod selectors and NetworkPolicies use it); a
 * workload with a Service gives the Service the same name.
 */
export const APP = {
    airflowScheduler: "airflow-scheduler",
    airflowWebserver: "airflow-webserver",
    airflowWorker: "airflow-worker",
    airflowTriggerer: "airflow-triggerer",
    airflowDagProcessor: "airflow-dag-processor",
    airflowMigrate: "airflow-migrate",
    airflowCreateUser: "airflow-create-user",
    feastApply: "feast-apply",
    /** Waits until CloudNativePG's webhook takes connections through its Service (components/data/postgres.ts). */
    cnpgWebhookReady: "cnpg-webhook-ready",
    mlflow: "mlflow",
    fastapi: "fastapi",
    fingpt: "fingpt",
    /** The prometheus chart's server pods. */
    prometheus: "prometheus",
} as const;

/** Namespaces the program fixes (the pipeline's and monitoring's come from stack config). */
export const NAMESPACES = {
    certManager: "cert-manager",
    keda: "keda",
    devicePlugin: "nvidia-device-plugin",
    /** The CloudNativePG operator and the Barman Cloud plugin (cluster-wide: it watches every namespace). */
    cnpg: "cnpg-system",
} as const;

/** Helm release names (the charts name their Services and pod labels after them). */
export const RELEASES = {
    cnpgOperator: "cnpg",
    /** The CloudNativePG Cluster: Services `<name>-rw`, `-r` (and `-ro` with replicas); pods labelled `cnpg.io/cluster: <name>`. */
    postgresCluster: "fx-postgres",
    barmanCloud: "barman-cloud",
    /** Also the chart's fullname: the Service is `fx-redis`. */
    redis: "fx-redis",
    prometheus: "prometheus",
    grafana: "grafana",
    statsdExporter: "statsd-exporter",
    keda: "keda",
    certManager: "cert-manager",
    devicePlugin: "nvidia-device-plugin",
} as const;

/** Services one part addresses by name (our workloads' Services are named as in APP). */
export const SERVICES = {
    postgresRw: `${RELEASES.postgresCluster}-rw`,
    redis: RELEASES.redis,
    /** The prometheus chart's server Service. */
    prometheus: "prometheus-server",
    grafana: RELEASES.grafana,
    statsdExporter: "statsd-exporter",
    kubeStateMetrics: "kube-state-metrics",
} as const;

/** Databases in the Postgres cluster; each is owned by the login role of the same name. */
export const DATABASES = { airflow: "airflow", mlflow: "mlflow", feast: "feast" } as const;

/** The model the pipeline registers in MLflow and the inference API serves. */
export const MODEL = { name: "fx-usdsgd-predictor", alias: "champion" } as const;

/** Redis logical databases: the Feast online store and the Celery broker. */
export const REDIS_DBS = { feastOnline: 0, celeryBroker: 1 } as const;

/** The Celery queue Airflow sends tasks to (`[operators] default_queue`): a Redis list of that name. */
export const CELERY_QUEUE = "default";

/** Paths inside the images (dockerfiles/). */
export const IMAGE_PATHS = {
    /** AIRFLOW_HOME of the official Airflow image our three Airflow images build on. */
    airflowHome: "/opt/airflow",
    /** `feast_repo/` in the images that run Feast's CLI: the Airflow worker's, under AIRFLOW_HOME. */
    feastRepoAirflowWorker: "/opt/airflow/feast_repo",
    /** HF_HOME of the fx-fingpt image; the model cache volume is mounted here. */
    fingptHfHome: "/var/cache/huggingface",
    /** gunicorn's multiprocess metrics folder in the fx-fastapi pods (a scratch volume under /tmp). */
    fastapiMetricsDir: "/tmp/fx-prometheus",
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------------------------

/** Kubernetes port names of our containers and Services (probes and Services refer to the name). */
export const PORT_NAMES = { http: "http", workerLogs: "worker-logs" } as const;

/**
 * Every port one part of the stack calls on another, by name. Ours: the container port, which our Services expose
 * unchanged. The charts': the container port the chart runs (NetworkPolicies see pod ports), and the Service port
 * where it differs (`...Service`). All TCP except `statsd` (UDP).
 */
export const PORTS = {
    // Our images (dockerfiles/ EXPOSE the same).
    fastapi: 8000,
    fingpt: 8001,
    mlflow: 5000,
    airflowWebserver: 8080,
    /** Airflow's task-log server on the Celery workers (and the scheduler, when it runs tasks). */
    airflowWorkerLogs: 8793,
    // Data.
    postgres: 5432,
    /** CloudNativePG's instance manager: metrics exporter and status endpoint (polled by the operator). */
    postgresMetrics: 9187,
    postgresStatus: 8000,
    /** The Barman Cloud plugin's gRPC service (its chart's `service.port`). */
    barmanCloudPlugin: 9090,
    redis: 6379,
    /** The redis chart's oliver006/redis_exporter sidecar. */
    redisExporter: 9121,
    // Monitoring charts.
    /** StatsD in (UDP), from the Airflow pods. */
    statsd: 9125,
    statsdMetrics: 9102,
    prometheus: 9090,
    prometheusService: 80,
    grafana: 3000,
    grafanaService: 80,
    alertmanager: 9093,
    kubeStateMetrics: 8080,
    // Platform charts.
    certManagerWebhook: 10250,
    cnpgWebhook: 9443,
    /** cert-manager's ACME HTTP-01 solver pods. */
    acmeSolver: 8089,
    kedaMetricsApiServer: 6443,
    kedaWebhooks: 9443,
    kedaOperatorGrpc: 9666,
    /** Each node's kubelet (Prometheus scrapes its /metrics there). */
    kubelet: 10250,
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Pods of the charts, by the labels their charts set
// ---------------------------------------------------------------------------------------------------------------

/** Labels of pods the charts create (instance = Helm release name). */
export const CHART_PODS = {
    grafana: { "app.kubernetes.io/name": "grafana" },
    /** The statsd-exporter chart labels its pods with the chart name; the release name is ours. */
    statsdExporter: { "app.kubernetes.io/instance": RELEASES.statsdExporter },
    alertmanager: { "app.kubernetes.io/name": "alertmanager" },
    kubeStateMetrics: { "app.kubernetes.io/name": "kube-state-metrics" },
    certManagerWebhook: {
        "app.kubernetes.io/instance": RELEASES.certManager,
        "app.kubernetes.io/component": "webhook",
    },
    cnpgOperator: { "app.kubernetes.io/name": "cloudnative-pg" },
    /** The CloudNativePG cluster's instances. */
    postgres: { "cnpg.io/cluster": RELEASES.postgresCluster },
    /** The Barman Cloud plugin's pod (its chart's selector labels). */
    barmanCloud: {
        "app.kubernetes.io/name": "plugin-barman-cloud",
        "app.kubernetes.io/instance": RELEASES.barmanCloud,
    },
    redis: { "app.kubernetes.io/instance": RELEASES.redis },
    /** cert-manager's temporary HTTP-01 solver pods, created in the Ingress's namespace. */
    acmeSolver: { "acme.cert-manager.io/http01-solver": "true" },
    /** The KEDA chart's pods (`app.kubernetes.io/name` = the chart's component names). */
    kedaOperator: { "app.kubernetes.io/name": "keda-operator" },
    kedaMetricsApiServer: { "app.kubernetes.io/name": "keda-operator-metrics-apiserver" },
    kedaWebhooks: { "app.kubernetes.io/name": "keda-admission-webhooks" },
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------------------------

/** Every Secret the program creates, by name, and its keys. Consumers get references (name + key), never values. */
export const SECRETS = {
    airflowKeys: {
        name: "airflow-keys",
        keys: { fernet: "fernet-key", webserverSecret: "webserver-secret-key", jwtSecret: "jwt-secret" },
    },
    airflowAdmin: { name: "airflow-admin", keys: { username: "username", password: "password" } },
    /** The connection URLs Airflow composes from the passwords (airflow.ts). */
    airflowConnections: {
        name: "airflow-connections",
        keys: { sqlAlchemyConn: "sql-alchemy-conn", resultBackend: "result-backend", brokerUrl: "broker-url" },
    },
    /** One `kubernetes.io/basic-auth` Secret per database role, `pg-<role>`, with the keys CloudNativePG reads. */
    dbRole: { namePrefix: "pg-", keys: { username: "username", password: "password" } },
    redisAuth: { name: "redis-auth", keys: { password: "password" } },
    /** Appended to redis.conf by the redis chart (`extraSecretRedisConfigs`): its only file. */
    redisConfig: { name: "redis-config", keys: { requirepass: "requirepass.conf" } },
    /** The grafana chart's `admin.existingSecret`, with the chart's default key names. */
    grafanaAdmin: { name: "grafana-admin", keys: { user: "admin-user", password: "admin-password" } },
    oanda: { name: "oanda", keys: { token: "token", accountId: "account-id" } },
    huggingface: { name: "huggingface", keys: { token: "token" } },
    /** The keys the cluster chart's ObjectStore `s3Credentials` refer to. */
    postgresBackup: {
        name: "postgres-backup-s3",
        keys: { accessKeyId: "ACCESS_KEY_ID", secretAccessKey: "ACCESS_SECRET_KEY" },
    },
    registryPull: { name: "registry-pull", keys: { dockerConfig: ".dockerconfigjson" } },
    mlflowBackendStore: { name: "mlflow-backend-store", keys: { uri: "uri" } },
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Environment variables
// ---------------------------------------------------------------------------------------------------------------

/**
 * Every environment variable name a component sets, grouped by who reads it. Our Python services read theirs through
 * pydantic-settings (`validation_alias`), Feast's feature_store.yaml (`${VAR}`) or `os.environ`; the rest are read by
 * a third party (ENV_THIRD_PARTY). Airflow's own `AIRFLOW__<SECTION>__<KEY>` settings are Airflow's configuration
 * and live in the Airflow component.
 */
export const ENV = {
    /** The Feast online store in Redis: fastapi's ServiceSettings, fx_pipeline's RedisSettings, feature_store.yaml. */
    feastOnline: {
        redisHost: "REDIS_HOST",
        redisPort: "REDIS_PORT",
        redisPassword: "REDIS_PASSWORD",
        redisDb: "FEAST_REDIS_DB",
    },
    /** Feast's SQL registry in Postgres: feature_store.yaml. */
    feastRegistry: {
        host: "FEAST_DB_HOST",
        port: "FEAST_DB_PORT",
        database: "FEAST_DB_NAME",
        user: "FEAST_DB_USER",
        password: "FEAST_DB_PASSWORD",
    },
    /** The registered model and where it lives: fastapi's ServiceSettings and fx_pipeline's PipelineSettings. */
    model: { trackingUri: "MLFLOW_TRACKING_URI", name: "MODEL_NAME", alias: "MODEL_ALIAS" },
    /** The instruments served and collected (comma list): ServiceSettings, PipelineSettings and the DAG files. */
    instruments: "INSTRUMENTS",
    /** ISO dates (comma list) on which the FX market is closed besides weekends: ServiceSettings, PipelineSettings. */
    marketHolidays: "MARKET_HOLIDAYS",
    /** The inference API (app/fastapi_service): ServiceSettings, gunicorn.conf.py. */
    fastapi: {
        featureMaxAgeSeconds: "FEATURE_MAX_AGE_SECONDS",
        modelReloadSeconds: "MODEL_RELOAD_SECONDS",
        /** gunicorn.conf.py's worker count. */
        webConcurrency: "WEB_CONCURRENCY",
        /** prometheus_client's multiprocess folder (gunicorn.conf.py and app/metrics.py read it too). */
        prometheusMultiprocDir: "PROMETHEUS_MULTIPROC_DIR",
    },
    /** FinGPT (app/fingpt_service): FinGPTSettings, and Hugging Face's libraries. */
    fingpt: {
        mode: "FINGPT_MODE",
        baseModel: "FINGPT_BASE_MODEL",
        adapter: "FINGPT_ADAPTER",
        loadIn8bit: "FINGPT_LOAD_IN_8BIT",
        hfHome: "HF_HOME",
        hfToken: "HF_TOKEN",
    },
    /** The pipeline's tasks on the Celery workers: fx_pipeline's PipelineSettings and OandaSettings. */
    pipeline: {
        dataSource: "FX_DATA_SOURCE",
        feastRepoPath: "FEAST_REPO_PATH",
        oandaEnvironment: "OANDA_ENVIRONMENT",
        oandaApiToken: "OANDA_API_TOKEN",
        oandaAccountId: "OANDA_ACCOUNT_ID",
    },
    /** The MLflow tracking server (`mlflow server` reads them itself). */
    mlflowServer: {
        backendStoreUri: "MLFLOW_BACKEND_STORE_URI",
        allowedHosts: "MLFLOW_SERVER_ALLOWED_HOSTS",
        enableJobExecution: "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
        s3EndpointUrl: "MLFLOW_S3_ENDPOINT_URL",
    },
    /** The Airflow admin-user Job's own command line (`$ADMIN_USERNAME`, `$ADMIN_PASSWORD`). */
    airflowAdminJob: { username: "ADMIN_USERNAME", password: "ADMIN_PASSWORD" },
    /** Airflow's home folder (the official image reads it). */
    airflowHome: "AIRFLOW_HOME",
    /** Process-wide: HOME for the libraries that cache under it; dumb-init's signal mode; no .pyc on read-only roots. */
    process: { home: "HOME", dumbInitSetsid: "DUMB_INIT_SETSID", pythonDontWriteBytecode: "PYTHONDONTWRITEBYTECODE" },
    /** MLflow's anonymous usage telemetry (on by default since 3.2): off in the server and in the training client. */
    mlflowTelemetry: { disable: "MLFLOW_DISABLE_TELEMETRY" },
    /** Set in the redis chart's values: redis-cli (the chart's probes) and the exporter sidecar read them. */
    redisChart: { cliAuth: "REDISCLI_AUTH", exporterPassword: "REDIS_PASSWORD" },
} as const;

/**
 * Env names read by software other than our Python code, with who reads them. A name here needs no Python reader;
 * test/contracts.test.ts fails on any env name a container gets that neither its Python service nor one of these
 * reads. `prefix` entries cover a whole family (Airflow reads every `AIRFLOW__<SECTION>__<KEY>`).
 */
export const ENV_THIRD_PARTY = {
    airflow: { reader: "Apache Airflow (its configuration)", prefix: "AIRFLOW__", names: [ENV.airflowHome] },
    mlflowServer: { reader: "the MLflow tracking server (mlflow server)", names: Object.values(ENV.mlflowServer) },
    mlflowTelemetry: {
        reader: "MLflow's telemetry client (the server and the training code's MLflow client)",
        names: [ENV.mlflowTelemetry.disable],
    },
    huggingFace: { reader: "huggingface_hub / transformers", names: [ENV.fingpt.hfHome, ENV.fingpt.hfToken] },
    prometheusClient: { reader: "prometheus_client (multiprocess mode)", names: [ENV.fastapi.prometheusMultiprocDir] },
    home: { reader: "Python and the libraries that cache under the home folder", names: [ENV.process.home] },
    python: { reader: "the Python interpreter", names: [ENV.process.pythonDontWriteBytecode] },
    dumbInit: { reader: "dumb-init, the official Airflow image's init", names: [ENV.process.dumbInitSetsid] },
    ownCommand: {
        reader: "the container's own command line (`$NAME` in its command or args)",
        names: Object.values(ENV.airflowAdminJob),
    },
} as const;
export type ThirdParty = keyof typeof ENV_THIRD_PARTY;

/** A pydantic-settings class of one of our Python services, `module:Class`, introspected in the venv `venv`. */
export interface SettingsReader {
    venv: "fastapi" | "fingpt" | "pipeline";
    settings: string;
    /** The service builds it only when this env var has this value (the OANDA settings while FX_DATA_SOURCE=oanda). */
    when?: { env: string; equals: string };
}

/** Who reads the environment of one kind of container. */
export interface EnvReaders {
    /** pydantic-settings classes: every alias is a name read, every field without a default a name required. */
    settings: readonly SettingsReader[];
    /**
     * Files under app/ that read the environment: Python files (their `os.environ` / `os.getenv` reads, found with
     * Python's ast) and YAML files (their `${VAR}` substitutions, each required: Feast leaves an unset one literal).
     */
    files: readonly string[];
    thirdParty: readonly ThirdParty[];
}

const FEAST_CONFIG = "feast_repo/feature_store.yaml";
const AIRFLOW_READERS: EnvReaders = { settings: [], files: [], thirdParty: ["airflow", "dumbInit", "home"] };
/** Containers that parse the DAG files: their module-level `os.environ` reads (INSTRUMENTS) run there. */
const DAG_PARSER_READERS: EnvReaders = { ...AIRFLOW_READERS, files: ["airflow/dags/*.py"] };

/**
 * The readers of each container the program runs, by `<app.kubernetes.io/name>/<container name>` (init containers
 * included). test/contracts.test.ts fails on a container missing here, so a new one cannot escape the check.
 */
export const ENV_READERS: Readonly<Record<string, EnvReaders>> = {
    [`${APP.fastapi}/fastapi`]: {
        settings: [{ venv: "fastapi", settings: "app.settings:ServiceSettings" }],
        files: ["fastapi_service/gunicorn.conf.py", "fastapi_service/app/*.py"],
        thirdParty: ["prometheusClient", "home"],
    },
    [`${APP.fingpt}/fingpt`]: {
        settings: [{ venv: "fingpt", settings: "fingpt_service.settings:FinGPTSettings" }],
        files: ["fingpt_service/fingpt_service/*.py"],
        thirdParty: ["huggingFace", "home"],
    },
    [`${APP.airflowWorker}/worker`]: {
        settings: [
            { venv: "pipeline", settings: "fx_pipeline.config:PipelineSettings" },
            { venv: "pipeline", settings: "fx_pipeline.config:RedisSettings" },
            {
                venv: "pipeline",
                settings: "fx_pipeline.config:OandaSettings",
                when: { env: ENV.pipeline.dataSource, equals: "oanda" },
            },
        ],
        files: [FEAST_CONFIG, "feast_repo/*.py", "src/fx_pipeline/*.py", "airflow/dags/*.py"],
        thirdParty: [...AIRFLOW_READERS.thirdParty, "mlflowTelemetry"],
    },
    // `feast apply` (the worker image): the CLI reads feature_store.yaml and imports the feature definitions.
    [`${APP.feastApply}/feast-apply`]: {
        settings: [],
        files: [FEAST_CONFIG, "feast_repo/*.py"],
        thirdParty: ["home", "python"],
    },
    // bash alone (components/data/postgres.ts): no environment of ours.
    [`${APP.cnpgWebhookReady}/wait`]: { settings: [], files: [], thirdParty: [] },
    [`${APP.mlflow}/mlflow`]: { settings: [], files: [], thirdParty: ["mlflowServer", "mlflowTelemetry", "home"] },
    [`${APP.airflowMigrate}/migrate`]: AIRFLOW_READERS,
    [`${APP.airflowCreateUser}/create-user`]: { ...AIRFLOW_READERS, thirdParty: ["airflow", "dumbInit", "ownCommand"] },
    [`${APP.airflowScheduler}/scheduler`]: DAG_PARSER_READERS,
    [`${APP.airflowDagProcessor}/dag-processor`]: DAG_PARSER_READERS,
    [`${APP.airflowTriggerer}/triggerer`]: AIRFLOW_READERS,
    [`${APP.airflowWebserver}/webserver`]: AIRFLOW_READERS,
    ...Object.fromEntries(
        [
            APP.airflowScheduler,
            APP.airflowDagProcessor,
            APP.airflowTriggerer,
            APP.airflowWebserver,
            APP.airflowWorker,
        ].map((app) => [`${app}/wait-for-airflow-migrations`, AIRFLOW_READERS]),
    ),
};
