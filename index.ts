// Composition root: the architecture table of the README as components wired by their outputs.
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "./components/config";
import { CERT_MANAGER_NAMESPACE, DEVICE_PLUGIN_NAMESPACE, Namespaces } from "./components/namespaces";
import { Edge } from "./components/edge";
import { Monitoring } from "./components/monitoring";
import { Images } from "./components/images";
import { Postgres } from "./components/postgres";
import { Redis } from "./components/redis";
import { Secrets } from "./components/secrets";

const config = loadConfig();

const namespaces = new Namespaces("fx", {
    app: config.namespace,
    monitoring: config.monitoringNamespace,
    certManager: config.edge.installCertManager ? CERT_MANAGER_NAMESPACE : undefined,
    devicePlugin: config.gpu.installDevicePlugin ? DEVICE_PLUGIN_NAMESPACE : undefined,
});
const secrets = new Secrets("fx", { config, namespace: namespaces.app, monitoringNamespace: namespaces.monitoring });
const images = new Images("fx", {
    context: config.appContext,
    registry: config.registry,
    platform: config.imagePlatform,
    versions: config.versions,
});

const postgres = new Postgres("fx", {
    namespace: namespaces.app,
    monitoringNamespace: namespaces.monitoring,
    roleSecrets: {
        airflow: secrets.dbRoles.airflow.secretName,
        mlflow: secrets.dbRoles.mlflow.secretName,
        feast: secrets.dbRoles.feast.secretName,
    },
    instances: config.postgresInstances,
    version: config.versions.postgres,
    storage: { size: config.storage.postgres, storageClass: config.storage.storageClass },
    retainOnDelete: config.storage.retainOnDelete,
});
const redis = new Redis("fx", {
    namespace: namespaces.app,
    monitoringNamespace: namespaces.monitoring,
    password: secrets.redisPassword,
    configSecretName: secrets.redisConfigSecretName,
    version: config.versions.redis,
    storage: { size: config.storage.redis, storageClass: config.storage.storageClass },
    retainOnDelete: config.storage.retainOnDelete,
});

const monitoring = new Monitoring("fx", {
    namespace: namespaces.monitoring,
    appNamespace: namespaces.app,
    grafanaAdminSecretName: secrets.grafanaAdminSecretName,
    retention: config.prometheusRetention,
    storageSize: config.storage.prometheus,
    storageClass: config.storage.storageClass,
    features: { fingpt: config.fingpt.enabled },
    extraScrapeJobs: [postgres.scrapeJob],
});

const edge = new Edge("fx", {
    edge: config.edge,
    certManagerNamespace: namespaces.certManager ?? CERT_MANAGER_NAMESPACE,
    backends: {
        airflow: { namespace: namespaces.app, service: "airflow-webserver", port: 8080 },
        mlflow: { namespace: namespaces.app, service: "mlflow", port: 5000 },
        grafana: { namespace: namespaces.monitoring, ...monitoring.grafanaService },
        api: { namespace: namespaces.app, service: "fastapi", port: 8000 },
    },
});

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
