import type * as pulumi from "@pulumi/pulumi";
import type { ChartOrigin } from "../lib/charts";
import type { ResourceSpec, Toleration } from "../lib/k8s";
import type { AirflowRelease, Choice, SizedWorkload } from "./rules";

/**
 * The shape of a stack's validated configuration, and of the parts components take. Types only: importing this module
 * reads no file and runs nothing (config/validate.ts builds the values; components and index.ts take them).
 */

/** The cluster a stack deploys to, from stack config (`kubeContext`, `kubeconfig`). */
export interface ClusterTarget {
    /** kubeconfig context; never the "current" one implicitly. */
    readonly context: string;
    /** Path of the kubeconfig file; unset means the default lookup ($KUBECONFIG, then ~/.kube/config). */
    readonly kubeconfig?: string;
}

/**
 * Postgres backups (config `postgresBackups` and `backup*`): WAL archiving and scheduled base backups through the
 * Barman Cloud plugin to an S3-compatible object store, and optionally a recovery from them.
 */
export interface BackupConfig {
    /** barman's destinationPath, `s3://<bucket>[/<path>]`. */
    readonly destination: string;
    /** https:// endpoint of the object store. */
    readonly endpoint: string;
    /** CloudNativePG six-field cron (seconds first). */
    readonly schedule: string;
    /** `<n>d|w|m`, as the ObjectStore's retentionPolicy takes it. */
    readonly retention: string;
    /** The folder under `destination` this cluster's backups go to. */
    readonly serverName: string;
    /** Bootstrap from the backups of `from` (a serverName), up to `targetTime` when given. */
    readonly recovery?: { readonly from: string; readonly targetTime?: string };
}

/** The object store's access key of the Postgres backups (secret config `backupAccessKeyId`, `backupSecretAccessKey`). */
export interface BackupCredentials {
    readonly accessKeyId: pulumi.Output<string>;
    readonly secretAccessKey: pulumi.Output<string>;
}

export interface StackConfig {
    readonly project: string;
    readonly stack: string;
    /** The cluster this stack deploys to (kubeContext, kubeconfig); the program's one Kubernetes provider. */
    readonly cluster: ClusterTarget;
    readonly namespace: string;
    readonly monitoringNamespace: string;
    readonly registry: {
        readonly server: string;
        readonly username?: string;
        readonly password?: pulumi.Output<string>;
    };
    readonly appContext: string;
    readonly charts: ChartOrigin;
    readonly imagePlatform: Choice<"imagePlatform">;
    readonly replicas: {
        readonly fastapi: number;
        readonly fastapiMax: number;
        /** Uvicorn worker processes per FastAPI pod. */
        readonly fastapiWorkers: number;
        readonly airflowWorker: number;
        readonly airflowWebserver: number;
        /** Worker processes per webserver/api-server pod. */
        readonly airflowApiWorkers: number;
        /** Celery workers scaled by queue depth with KEDA (`airflowWorkerAutoscaling`); `airflowWorker` is the floor. */
        readonly airflowWorkerAutoscaling?: { readonly max: number; readonly queueTarget: number };
    };
    readonly resources: Readonly<Record<SizedWorkload, ResourceSpec>>;
    readonly storage: {
        readonly storageClass?: string;
        readonly postgres: string;
        readonly redis: string;
        readonly mlflowArtifacts: string;
        /** MLflow artifacts in object storage instead of the PVC (`mlflowArtifactDestination` set). */
        readonly mlflowObjectStore?: {
            readonly destination: string;
            readonly endpoint?: string;
            /** A Secret of the user's in the pipeline namespace, read as env vars by reference. */
            readonly credentialsSecret?: string;
        };
        readonly fingptCache: string;
        readonly prometheus: string;
        readonly retainOnDelete: boolean;
    };
    readonly prometheusRetention: string;
    readonly postgresInstances: number;
    /** Postgres backups; undefined when `postgresBackups` is false. */
    readonly backup?: BackupConfig;
    /** The object store's credentials of the backups (secret config), with `backup`. */
    readonly backupCredentials?: BackupCredentials;
    readonly versions: {
        readonly postgres: string;
        readonly redis: string;
        readonly airflow: AirflowRelease;
        readonly mlflow: string;
    };
    readonly fingpt: {
        readonly enabled: boolean;
        readonly mode: Choice<"fingptMode">;
        readonly baseModel: string;
        readonly adapter: string;
        readonly hfToken?: pulumi.Output<string>;
    };
    readonly gpu: {
        readonly enabled: boolean;
        readonly count: number;
        readonly nodeSelector: Readonly<Record<string, string>>;
        readonly tolerations: readonly Toleration[];
        readonly installDevicePlugin: boolean;
    };
    readonly edge: {
        readonly domain: string;
        readonly ingressClass: string;
        /** Namespace of the ingress controller pods (NetworkPolicies admit UI/API traffic from it). */
        readonly ingressControllerNamespace: string;
        readonly installCertManager: boolean;
        readonly tlsIssuer: Choice<"tlsIssuer">;
        readonly acmeEmail?: string;
        readonly acmeServer: string;
    };
    readonly data: {
        readonly source: Choice<"dataSource">;
        readonly oandaEnvironment: Choice<"oandaEnvironment">;
        readonly oandaToken?: pulumi.Output<string>;
        readonly oandaAccountId?: pulumi.Output<string>;
        readonly instruments: readonly string[];
        /** ISO dates on which the FX market is closed (New York trading days); staleness does not count them. */
        readonly marketHolidays: readonly string[];
    };
    readonly grafanaAdminUser: string;
}
