// Composition root: the architecture table of the README as components wired by their outputs.
import * as pulumi from "@pulumi/pulumi";
import { clusterOptions, clusterProvider } from "./components/platform/cluster";
import { loadConfig } from "./config";
import { HelmCharts } from "./lib/chart-values";
import { Namespaces } from "./components/platform/namespaces";
import { APP, NAMESPACES, PORTS } from "./lib/contracts";
import { WorkerAutoscaler } from "./components/platform/autoscaling";
import { Edge, installCertManager } from "./components/network/edge";
import { AppNetworkPolicies } from "./components/network/app-policies";
import { IMAGE_KEYS, Images } from "./components/platform/images";
import { Monitoring } from "./components/monitoring/monitoring";
import { Postgres } from "./components/data/postgres";
import { Redis } from "./components/data/redis";
import { Secrets } from "./components/platform/secrets";
import { Airflow } from "./components/apps/airflow";
import { Fastapi } from "./components/apps/fastapi";
import { Feast, feastConnectionOf } from "./components/data/feast";
import { Fingpt } from "./components/apps/fingpt";
import { GpuDevicePlugin } from "./components/platform/gpu";
import { Mlflow } from "./components/apps/mlflow";

const config = loadConfig();
// config.charts is read here only: every chart is installed through this one maker of Releases.
const charts = new HelmCharts(config.charts);

// The stack's own cluster (config kubeContext/kubeconfig), never the current kubeconfig context: every Kubernetes
// resource below gets this provider through `onCluster`.
const onCluster = clusterOptions(clusterProvider(config.cluster));

const namespaces = new Namespaces(
    "fx",
    {
        app: config.namespace,
        monitoring: config.monitoringNamespace,
        certManager: config.edge.installCertManager ? NAMESPACES.certManager : undefined,
        devicePlugin: config.gpu.installDevicePlugin ? NAMESPACES.devicePlugin : undefined,
        keda: config.replicas.airflowWorkerAutoscaling ? NAMESPACES.keda : undefined,
    },
    onCluster,
);
const secrets = new Secrets(
    "fx",
    {
        namespace: namespaces.app,
        monitoringNamespace: namespaces.monitoring,
        grafanaAdminUser: config.grafanaAdminUser,
        registry: config.registry,
        oanda:
            config.data.oandaToken && config.data.oandaAccountId
                ? { token: config.data.oandaToken, accountId: config.data.oandaAccountId }
                : undefined,
        huggingFaceToken: config.fingpt.hfToken,
        backupCredentials: config.backupCredentials,
    },
    onCluster,
);
const images = new Images("fx", {
    context: config.appContext,
    // Only what this stack deploys: no CUDA image (fx-fingpt) while FinGPT is off.
    include: IMAGE_KEYS.filter((key) => key !== "fingpt" || config.fingpt.enabled),
    registry: config.registry,
    platform: config.imagePlatform,
    versions: config.versions,
});

// The cluster's cert-manager namespace, ours when the stack installs it.
const certManagerNamespace = namespaces.certManager ?? NAMESPACES.certManager;
// cert-manager first: the Barman Cloud plugin of the Postgres backups needs it, as do the edge's issuers.
const certManager = config.edge.installCertManager
    ? installCertManager("fx", charts, certManagerNamespace, onCluster)
    : undefined;

const postgres = new Postgres(
    "fx",
    {
        charts,
        namespace: namespaces.app,
        monitoringNamespace: namespaces.monitoring,
        roleSecrets: secrets.dbRoleSecretNames,
        instances: config.postgresInstances,
        version: config.versions.postgres,
        storage: { size: config.storage.postgres, storageClass: config.storage.storageClass },
        resources: config.resources.postgres,
        retainOnDelete: config.storage.retainOnDelete,
        backup:
            config.backup && secrets.backupCredentialsSecretName
                ? {
                      config: config.backup,
                      credentialsSecretName: secrets.backupCredentialsSecretName,
                      certManager,
                  }
                : undefined,
    },
    onCluster,
);
const redis = new Redis(
    "fx",
    {
        charts,
        namespace: namespaces.app,
        monitoringNamespace: namespaces.monitoring,
        password: secrets.redisPassword,
        configSecretName: secrets.redisConfigSecretName,
        version: config.versions.redis,
        storage: { size: config.storage.redis, storageClass: config.storage.storageClass },
        retainOnDelete: config.storage.retainOnDelete,
    },
    onCluster,
);

const monitoring = new Monitoring(
    "fx",
    {
        charts,
        namespace: namespaces.monitoring,
        appNamespace: namespaces.app,
        grafanaAdminSecretName: secrets.grafanaAdminSecretName,
        retention: config.prometheusRetention,
        storageSize: config.storage.prometheus,
        serverResources: config.resources.prometheus,
        storageClass: config.storage.storageClass,
        features: { fingpt: config.fingpt.enabled },
        extraScrapeJobs: [postgres.scrapeJob],
    },
    onCluster,
);

// Application workloads (issue 5): all from the digest-pinned images, credentials by Secret reference.
const dataStores = { ...onCluster, dependsOn: [postgres, redis] };
const pullSecret = secrets.imagePullSecretName;
// The URLs that hold a password are composed in Secrets, which keeps the passwords; the apps get Secret keys.
const connections = secrets.connections({ postgres, redis });
const feastConnection = feastConnectionOf(redis, postgres, {
    redisPassword: secrets.redisPassword,
    registryUser: secrets.dbRoles.feast.username,
    registryPassword: secrets.dbRoles.feast.password,
});
const mlflow = new Mlflow(
    "fx",
    {
        namespace: namespaces.app,
        image: images.ref("mlflow"),
        backendStoreUri: connections.mlflowBackendStore,
        resources: config.resources.mlflow,
        artifacts: config.storage.mlflowObjectStore
            ? {
                  kind: "objectStore",
                  destination: config.storage.mlflowObjectStore.destination,
                  endpoint: config.storage.mlflowObjectStore.endpoint,
                  credentialsSecretName: config.storage.mlflowObjectStore.credentialsSecret,
              }
            : {
                  kind: "pvc",
                  size: config.storage.mlflowArtifacts,
                  storageClass: config.storage.storageClass,
                  retainOnDelete: config.storage.retainOnDelete,
              },
        domain: config.edge.domain,
        imagePullSecretName: pullSecret,
    },
    dataStores,
);
const feast = new Feast(
    "fx",
    {
        namespace: namespaces.app,
        image: images.ref("airflowWorker"),
        connection: feastConnection,
        resources: config.resources.airflowWorker,
        imagePullSecretName: pullSecret,
    },
    dataStores,
);
const fastapi = new Fastapi(
    "fx",
    {
        namespace: namespaces.app,
        image: images.ref("fastapi"),
        resources: config.resources.fastapi,
        replicas: { min: config.replicas.fastapi, max: config.replicas.fastapiMax },
        workers: config.replicas.fastapiWorkers,
        feast: feastConnection,
        mlflowTrackingUri: mlflow.trackingUri,
        instruments: config.data.instruments,
        marketHolidays: config.data.marketHolidays,
        imagePullSecretName: pullSecret,
    },
    { ...onCluster, dependsOn: [postgres, redis, feast] },
);
const airflow = new Airflow(
    "fx",
    {
        namespace: namespaces.app,
        images: {
            scheduler: images.ref("airflowScheduler"),
            webserver: images.ref("airflowWebserver"),
            worker: images.ref("airflowWorker"),
        },
        version: config.versions.airflow,
        connections: connections.airflow,
        keys: {
            fernet: secrets.airflowFernetKey,
            webserverSecret: secrets.airflowWebserverSecretKey,
            jwtSecret: secrets.airflowJwtSecret,
        },
        admin: secrets.airflowAdmin,
        tasks: {
            dataSource: config.data.source,
            oandaEnvironment: config.data.oandaEnvironment,
            oanda: secrets.oanda,
            instruments: config.data.instruments,
            marketHolidays: config.data.marketHolidays,
            feast: feastConnection,
            mlflowTrackingUri: mlflow.trackingUri,
        },
        statsd: { host: monitoring.statsdHost, port: monitoring.statsdPort },
        resources: {
            scheduler: config.resources.airflowScheduler,
            webserver: config.resources.airflowWebserver,
            worker: config.resources.airflowWorker,
            triggerer: config.resources.airflowTriggerer,
            dagProcessor: config.resources.airflowDagProcessor,
        },
        replicas: {
            webserver: config.replicas.airflowWebserver,
            worker: config.replicas.airflowWorker,
            apiWorkers: config.replicas.airflowApiWorkers,
            workerAutoscaled: config.replicas.airflowWorkerAutoscaling !== undefined,
        },
        imagePullSecretName: pullSecret,
    },
    { ...onCluster, dependsOn: [postgres, redis, feast] },
);
const workerScaling = config.replicas.airflowWorkerAutoscaling;
if (workerScaling && namespaces.keda) {
    // Celery workers by queue depth: KEDA reads the length of the queue list in the broker database.
    new WorkerAutoscaler(
        "airflow-worker",
        {
            charts,
            kedaNamespace: namespaces.keda,
            namespace: namespaces.app,
            target: { kind: "StatefulSet", name: APP.airflowWorker },
            min: config.replicas.airflowWorker,
            max: workerScaling.max,
            queueTarget: workerScaling.queueTarget,
            redis: {
                address: redis.address,
                db: redis.brokerDb,
                password: secrets.redisPassword,
                pods: redis.pods,
                port: redis.port,
            },
            after: [airflow],
            certManager,
        },
        onCluster,
    );
}
if (config.fingpt.enabled) {
    new Fingpt(
        "fx",
        {
            namespace: namespaces.app,
            image: images.ref("fingpt"),
            mode: config.fingpt.mode,
            baseModel: config.fingpt.baseModel,
            adapter: config.fingpt.adapter,
            gpu: config.gpu,
            resources: config.resources.fingpt,
            cache: {
                size: config.storage.fingptCache,
                storageClass: config.storage.storageClass,
                retainOnDelete: config.storage.retainOnDelete,
            },
            hfToken: secrets.huggingFaceToken,
            imagePullSecretName: pullSecret,
        },
        onCluster,
    );
}
if (config.gpu.installDevicePlugin && namespaces.devicePlugin) {
    new GpuDevicePlugin(
        "nvidia",
        {
            charts,
            namespace: namespaces.devicePlugin,
            nodeSelector: config.gpu.nodeSelector,
            tolerations: config.gpu.tolerations,
        },
        onCluster,
    );
}

const edge = new Edge(
    "fx",
    {
        edge: config.edge,
        certManager,
        certManagerNamespace,
        backends: {
            airflow: { namespace: namespaces.app, service: airflow.webserverServiceName, port: PORTS.airflowWebserver },
            mlflow: { namespace: namespaces.app, service: mlflow.serviceName, port: PORTS.mlflow },
            grafana: { namespace: namespaces.monitoring, ...monitoring.grafanaService },
            api: { namespace: namespaces.app, service: fastapi.serviceName, port: PORTS.fastapi },
        },
    },
    onCluster,
);

new AppNetworkPolicies(
    "fx",
    {
        app: namespaces.app,
        monitoring: namespaces.monitoring,
        certManager: namespaces.certManager,
        cnpgOperator: { namespace: NAMESPACES.cnpg, after: postgres.operator },
        devicePlugin: namespaces.devicePlugin,
        keda: namespaces.keda,
        ingressControllerNamespace: config.edge.ingressControllerNamespace,
        acmeHttp01: config.edge.tlsIssuer === "acme",
    },
    onCluster,
);

export const namespace = namespaces.app;
export const monitoringNamespace = namespaces.monitoring;
export const grafanaAdminSecret = secrets.grafanaAdminSecretName;
/** Digest-pinned image references (repo@sha256:...), one per ImageKey. */
export const imageRefs = pulumi.output(images.refs);
export const postgresHost = postgres.host;
export const postgresPort = postgres.port;
export const redisAddress = redis.address;
export const urls = edge.urls;
export const prometheusUrl = monitoring.prometheusUrl;
export const statsdHost = monitoring.statsdHost;
export const mlflowTrackingUri = mlflow.trackingUri;
export const airflowWebserverService = airflow.webserverServiceName;
