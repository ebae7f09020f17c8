import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { podSecurityLabels } from "../platform/namespaces";
import { allowFrom, peer, podsLabelled, podsNamed } from "../../lib/netpol";
import { APP, CHART_PODS, DATABASES, NAMESPACES, PORTS, RELEASES, SERVICES } from "../../lib/contracts";
import { DB_ROLES, DbRole } from "../platform/secrets";
import { SUPPORTED_VERSIONS } from "../../config/rules";
import { BackupConfig } from "../../config/types";
import { labels, resources, ResourceSpec, serviceHost } from "../../lib/k8s";
import { HelmCharts } from "../../lib/chart-values";
import { Workload } from "../../lib/workload";

/**
 * The exact Postgres image of each supported major version, from config/versions.yaml: its majors are the releases
 * postgresVersion accepts, so every version config lets through has its image (see the file for why they are pinned).
 */
export const POSTGRES_IMAGES: Readonly<Record<string, string>> = SUPPORTED_VERSIONS.postgres.images!;

/** The Barman Cloud plugin's name, as a Cluster's `plugins` and a ScheduledBackup's `pluginConfiguration` take it. */
export const BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io";

/** Pods that talk to Postgres (docs/contracts.md): every Airflow pod and Job, MLflow and the Feast apply Job. */
export const POSTGRES_CLIENTS = [
    APP.airflowScheduler,
    APP.airflowWebserver,
    APP.airflowWorker,
    APP.airflowTriggerer,
    APP.airflowDagProcessor,
    APP.airflowMigrate,
    APP.airflowCreateUser,
    APP.mlflow,
    APP.feastApply,
] as const;

export interface PostgresArgs {
    /** The stack's Helm charts (stack config `chartRepository`). */
    charts: HelmCharts;
    /** Namespace of the cluster (the pipeline's). */
    namespace: pulumi.Input<string>;
    /** Namespace of Prometheus, admitted to the metrics port. */
    monitoringNamespace: pulumi.Input<string>;
    /** The basic-auth Secret (`username`, `password`) of each role (Secrets.dbRoles); each role owns its database. */
    roleSecrets: Readonly<Record<DbRole, pulumi.Input<string>>>;
    /** Instances, 1 primary + replicas (config postgresInstances, validated there). */
    instances: number;
    /** Postgres major version, such as "17": a key of POSTGRES_IMAGES (config postgresVersion). */
    version: string;
    storage: { size: string; storageClass?: string };
    /** CPU and memory of each instance (memory request = limit). */
    resources: ResourceSpec;
    /** Protect and keep the Cluster (and so its volumes) when the stack is destroyed: see docs/data.md. */
    retainOnDelete: boolean;
    /**
     * WAL archiving and scheduled base backups through the Barman Cloud plugin (and a recovery from them when
     * `config.recovery` is set); the plugin's certificates need cert-manager, so its install goes first.
     */
    backup?: {
        config: BackupConfig;
        /** The Secret holding `ACCESS_KEY_ID` and `ACCESS_SECRET_KEY` (Secrets.backupCredentialsSecretName). */
        credentialsSecretName: pulumi.Input<string>;
        /** cert-manager's install, when the stack installs it. */
        certManager?: pulumi.Resource;
    };
}

/** The operator chart's webhook Service, as the API server calls it. */
const WEBHOOK_SERVICE_HOST = `cnpg-webhook-service.${NAMESPACES.cnpg}.svc`;

/**
 * A bash script (bash's /dev/tcp, no other tool) that exits 0 once `host:port` took a connection `inARow` seconds in
 * a row, and 1 with a message naming them after `deadlineSeconds`.
 */
export function waitForTcp(host: string, port: number, inARow: number, deadlineSeconds: number): string {
    return [
        "ok=0",
        `for ((i = 0; i < ${deadlineSeconds}; i++)); do`,
        `  if (exec 3<>/dev/tcp/${host}/${port}) 2>/dev/null; then ok=$((ok + 1)); else ok=0; fi`,
        `  if [ "$ok" -ge ${inARow} ]; then echo "${host}:${port} took ${inARow} connections in a row"; exit 0; fi`,
        "  sleep 1",
        "done",
        `echo "${host}:${port} took no ${inARow} connections in a row within ${deadlineSeconds} s" >&2`,
        "exit 1",
    ].join("\n");
}

/** The cluster chart's object store settings (shared by `backups` and `recovery`): S3-compatible, keys by Secret. */
function objectStoreValues(b: BackupConfig, secretName: pulumi.Input<string>): Record<string, unknown> {
    return {
        provider: "s3",
        destinationPath: b.destination,
        endpointURL: b.endpoint,
        // The chart would otherwise create a Secret from key literals in the values.
        secret: { create: false, name: secretName },
    };
}

/**
 * The cluster chart's values for backups and recovery: an ObjectStore `<cluster>-backups` the Cluster archives WAL to
 * (with `cluster.plugins` naming the plugin and `serverName`), a ScheduledBackup taking base backups there, and, when
 * recovering, `bootstrap.recovery` from the ObjectStore `<cluster>-recovery` (same bucket, the old serverName).
 */
export function backupValues(b: BackupConfig, secretName: pulumi.Input<string>): Record<string, unknown> {
    const values: Record<string, unknown> = {
        backups: {
            enabled: true,
            method: "plugin",
            pluginConfiguration: { name: BARMAN_PLUGIN },
            ...objectStoreValues(b, secretName),
            // Server-side encryption is the bucket's default: the chart's AES256 header is refused by S3-compatible
            // stores without a KMS (MinIO) and ignored by others.
            wal: { compression: "gzip", encryption: "", maxParallel: 2 },
            data: { compression: "gzip", encryption: "", jobs: 2 },
            retentionPolicy: b.retention,
            scheduledBackups: [
                {
                    name: "scheduled",
                    schedule: b.schedule,
                    backupOwnerReference: "self",
                    method: "plugin",
                    pluginConfiguration: { name: BARMAN_PLUGIN },
                },
            ],
            // The plugin's sidecar in every instance pod uploads WAL and base backups.
            instanceSidecarConfiguration: {
                resources: {
                    requests: { cpu: "50m", memory: "128Mi" },
                    limits: { cpu: "500m", memory: "128Mi" },
                },
            },
        },
    };
    if (b.recovery) {
        values.mode = "recovery";
        values.recovery = {
            method: "plugin",
            pluginConfiguration: { name: BARMAN_PLUGIN },
            clusterName: b.recovery.from,
            // Point in time; empty replays every archived WAL segment.
            pitrTarget: { time: b.recovery.targetTime ?? "" },
            // The database and owner initdb would have created; the roles and databases lists manage the rest.
            database: DATABASES.airflow,
            owner: DATABASES.airflow,
            ...objectStoreValues(b, secretName),
        };
    }
    return values;
}

/**
 * Postgres for Airflow, MLflow and Feast: the CloudNativePG operator and one Cluster (`fx-postgres`) with a database
 * per service, each owned by its own login role whose password CloudNativePG reads from the role's Secret.
 * The operator's release goes first: the cluster chart's objects are instances of the operator's CRDs and are
 * checked by its admission webhook.
 */
export class Postgres extends pulumi.ComponentResource {
    /** Read-write Service, `fx-postgres-rw.<ns>.svc.cluster.local`. */
    public readonly host: pulumi.Output<string>;
    public readonly port: number = PORTS.postgres;
    public readonly clusterName: string = RELEASES.postgresCluster;
    /** Databases, each owned by the role of the same name. */
    public readonly databases: readonly DbRole[] = DB_ROLES;
    /**
     * A Prometheus scrape job for the instances' exporters (add it under the prometheus chart's `scrapeConfigs`).
     * CloudNativePG copies Cluster annotations to its Services as well as its pods, so `prometheus.io/*` annotations
     * would make the chart's service-endpoints job scrape every instance again through `-rw`, `-ro` and `-r`.
     */
    public readonly scrapeJob: pulumi.Output<Record<string, unknown>>;
    /** The operator's namespace (`cnpg-system`), resolved once the Namespace exists. */
    public readonly operatorNamespace: pulumi.Output<string>;
    public readonly operator: k8s.helm.v3.Release;
    /** The Barman Cloud plugin's release, when the stack backs Postgres up. */
    public readonly backupPlugin?: k8s.helm.v3.Release;
    public readonly cluster: k8s.helm.v3.Release;
    /** The Job that waits until the operator's webhook takes connections through its Service. */
    public readonly webhookReady: Workload;

    constructor(name: string, args: PostgresArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:data:Postgres", name, {}, opts);

        const operatorNs = new k8s.core.v1.Namespace(
            `${name}-cnpg-system`,
            {
                metadata: {
                    name: NAMESPACES.cnpg,
                    labels: { ...labels("cloudnative-pg", "database-operator"), ...podSecurityLabels("restricted") },
                },
            },
            { parent: this },
        );

        this.operatorNamespace = operatorNs.metadata.name;

        this.operator = args.charts.release(
            `${name}-cnpg`,
            "cnpgOperator",
            {
                namespace: this.operatorNamespace,
                // Helm waits for the operator Deployment, so its webhook answers before the Cluster is applied.
                skipAwait: false,
            },
            // Not retained: its CRDs carry helm.sh/resource-policy: keep, so a retained Cluster outlives this release,
            // and the next `pulumi up` reinstalls the operator, which adopts the Cluster again.
            { parent: this },
        );

        // Helm's wait ends when the operator's pod is Ready, but the API server reaches the webhook through its
        // Service, and the Service's endpoint reaches the nodes' proxies a moment later. Applied in that moment, the
        // Cluster is refused ("failed calling webhook mcluster.cnpg.io ... connection refused"): seen on the real
        // node. This Job waits until the webhook's Service takes connections three seconds in a row; the provider
        // awaits the Job, and the Cluster waits for it. The Postgres image, which the Cluster pulls next anyway.
        this.webhookReady = new Workload(
            APP.cnpgWebhookReady,
            {
                namespace: this.operatorNamespace,
                component: "database-operator",
                kind: "Job",
                container: {
                    name: "wait",
                    image: POSTGRES_IMAGES[args.version],
                    command: ["bash", "-c", waitForTcp(WEBHOOK_SERVICE_HOST, 443, 3, 600)],
                    resources: { cpuRequest: "10m", cpuLimit: "100m", memory: "32Mi" },
                },
                runAs: { uid: 26, gid: 26 },
                tagPinnedReason: "the Postgres image the Cluster runs, by the exact tag the operator is given",
                job: { backoffLimit: 0, activeDeadlineSeconds: 660 },
                await: { timeout: "12m" },
            },
            { parent: this, dependsOn: [this.operator] },
        );

        const backup = args.backup;
        /** The plugin the Cluster archives through, in the operator's namespace (where the operator finds plugins). */
        this.backupPlugin = backup
            ? args.charts.release(
                  `${name}-barman-cloud`,
                  "barmanCloud",
                  {
                      namespace: this.operatorNamespace,
                      // Its CRD (ObjectStore) and its Service must exist before the cluster chart uses them.
                      skipAwait: false,
                  },
                  {
                      parent: this,
                      dependsOn: [this.operator, ...(backup.certManager ? [backup.certManager] : [])],
                  },
              )
            : undefined;

        const roles = DB_ROLES.map((role) => ({
            name: role,
            ensure: "present",
            login: true,
            superuser: false,
            createdb: false,
            createrole: false,
            inherit: true,
            connectionLimit: -1,
            comment: `owner of the ${role} database`,
            passwordSecret: { name: args.roleSecrets[role] },
        }));
        const databases = DB_ROLES.map((db) => ({ name: db, owner: db, ensure: "present", encoding: "UTF8" }));

        this.cluster = args.charts.release(
            `${name}-cluster`,
            "cnpgCluster",
            {
                namespace: args.namespace,
                values: {
                    ...(backup ? backupValues(backup.config, backup.credentialsSecretName) : {}),
                    fullnameOverride: RELEASES.postgresCluster,
                    version: { postgresql: args.version },
                    cluster: {
                        // Exact image instead of the chart's floating `postgresql:<major>`.
                        imageName: POSTGRES_IMAGES[args.version],
                        instances: args.instances,
                        // A PodDisruptionBudget over a single instance would block every node drain.
                        enablePDB: args.instances > 1,
                        // With one instance there is no replica: `-ro` would be a Service without endpoints, and a
                        // client sent there would wait for one. `-rw` and `-r` reach the primary.
                        ...(args.instances === 1 ? { services: { disabledDefaultServices: ["ro"] } } : {}),
                        // Never two instances on one node: losing a node loses at most one, and a replica takes over.
                        ...(args.instances > 1
                            ? {
                                  affinity: {
                                      enablePodAntiAffinity: true,
                                      podAntiAffinityType: "required",
                                      topologyKey: "kubernetes.io/hostname",
                                  },
                              }
                            : {}),
                        storage: { size: args.storage.size, storageClass: args.storage.storageClass ?? "" },
                        resources: resources(args.resources),
                        // initdb creates the first database and its owner (instead of CloudNativePG's `app`);
                        // the `databases` list below then manages all three the same way. A recovery restores
                        // them instead.
                        ...(backup?.config.recovery
                            ? {}
                            : {
                                  initdb: {
                                      database: DATABASES.airflow,
                                      owner: DATABASES.airflow,
                                      secret: { name: args.roleSecrets.airflow },
                                  },
                              }),
                        roles,
                        // The plugin archives WAL; `serverName` is this cluster's folder in the bucket.
                        ...(backup
                            ? {
                                  plugins: [
                                      { name: BARMAN_PLUGIN, parameters: { serverName: backup.config.serverName } },
                                  ],
                              }
                            : {}),
                    },
                    databases,
                },
            },
            {
                parent: this,
                dependsOn: [this.operator, this.webhookReady, ...(this.backupPlugin ? [this.backupPlugin] : [])],
                // Deleting the Cluster deletes its PVCs (CloudNativePG owns them), so the release itself is guarded:
                // `pulumi destroy` refuses while it is protected, and leaves it in place if protection is lifted.
                protect: args.retainOnDelete,
                retainOnDelete: args.retainOnDelete,
            },
        );

        this.host = serviceHost(SERVICES.postgresRw, args.namespace);

        const clusterPods = podsLabelled(CHART_PODS.postgres);
        allowFrom(
            `${name}-postgres-ingress`,
            {
                namespace: args.namespace,
                app: RELEASES.postgresCluster,
                podSelector: clusterPods,
                rules: [
                    {
                        why: "services with a database of their own",
                        from: [peer({ pods: podsNamed(...POSTGRES_CLIENTS) })],
                        ports: [PORTS.postgres],
                    },
                    {
                        why: "streaming replication and joins between the cluster's instances",
                        from: [peer({ pods: clusterPods })],
                        ports: [PORTS.postgres, PORTS.postgresStatus],
                    },
                    {
                        why: "CloudNativePG operator status checks",
                        from: [
                            peer({
                                namespace: NAMESPACES.cnpg,
                                pods: podsLabelled(CHART_PODS.cnpgOperator),
                            }),
                        ],
                        ports: [PORTS.postgresStatus],
                    },
                    {
                        why: "Prometheus scrapes the instances' exporters",
                        from: [peer({ namespace: args.monitoringNamespace, pods: podsNamed(APP.prometheus) })],
                        ports: [PORTS.postgresMetrics],
                    },
                ],
            },
            { parent: this },
        );

        if (this.backupPlugin) {
            // The operator calls the plugin's gRPC service (mutual TLS); the instances reach it through their
            // sidecar's socket, not the network, and push backups out to object storage (egress is not restricted).
            allowFrom(
                `${name}-barman-cloud-ingress`,
                {
                    namespace: this.operatorNamespace,
                    app: "plugin-barman-cloud",
                    podSelector: podsLabelled(CHART_PODS.barmanCloud),
                    rules: [
                        {
                            why: "CloudNativePG operator calls the Barman Cloud plugin",
                            from: [peer({ pods: podsLabelled(CHART_PODS.cnpgOperator) })],
                            ports: [PORTS.barmanCloudPlugin],
                        },
                    ],
                },
                { parent: this },
            );
        }

        this.scrapeJob = pulumi.output(args.namespace).apply(
            (ns): Record<string, unknown> => ({
                job_name: "cloudnative-pg",
                kubernetes_sd_configs: [{ role: "pod", namespaces: { names: [ns] } }],
                relabel_configs: [
                    {
                        source_labels: [
                            "__meta_kubernetes_pod_label_cnpg_io_cluster",
                            "__meta_kubernetes_pod_container_port_number",
                        ],
                        regex: `${RELEASES.postgresCluster};${PORTS.postgresMetrics}`,
                        action: "keep",
                    },
                    { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
                    { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
                    { source_labels: ["__meta_kubernetes_pod_label_cnpg_io_instanceRole"], target_label: "role" },
                ],
            }),
        );

        this.registerOutputs({
            host: this.host,
            port: this.port,
            clusterName: this.clusterName,
            operatorNamespace: this.operatorNamespace,
        });
    }
}
