import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { ResourceSpec } from "../../config";
import { SecretKeyRef, secretEnv } from "../platform/secrets";
import { AIRFLOW_USER, Workload } from "../../lib/workload";

/** Where the images that run Feast's CLI keep `feast_repo/` (dockerfiles/: the Airflow worker under AIRFLOW_HOME). */
export const FEAST_REPO_PATHS = { airflowWorker: "/opt/airflow/feast_repo" } as const;

/** How Feast reaches its SQL registry (Postgres `feast` database) and its Redis online store. */
export interface FeastConnection {
    redis: { host: pulumi.Input<string>; port: number; feastDb: number };
    redisPassword: SecretKeyRef;
    registry: { host: pulumi.Input<string>; port: number; database: string };
    /** The `feast` role's basic-auth Secret keys (`username`, `password`). */
    registryUser: SecretKeyRef;
    registryPassword: SecretKeyRef;
}

/**
 * Feast's connection from the data layer's outputs: the Redis online store (its own logical database) and the SQL
 * registry in Postgres' `feast` database, with the `feast` role's and Redis' credentials by Secret reference.
 */
export function feastConnectionOf(
    redis: { host: pulumi.Input<string>; port: number; feastDb: number },
    postgres: { host: pulumi.Input<string>; port: number },
    credentials: { redisPassword: SecretKeyRef; registryUser: SecretKeyRef; registryPassword: SecretKeyRef },
): FeastConnection {
    return {
        redis: { host: redis.host, port: redis.port, feastDb: redis.feastDb },
        registry: { host: postgres.host, port: postgres.port, database: "feast" },
        ...credentials,
    };
}

/**
 * Only the online store (Redis): for readers such as FastAPI, which never touch the registry and so get no
 * Postgres credentials.
 */
export function feastOnlineEnv(c: Pick<FeastConnection, "redis" | "redisPassword">): k8s.types.input.core.v1.EnvVar[] {
    return [
        { name: "REDIS_HOST", value: c.redis.host },
        { name: "REDIS_PORT", value: String(c.redis.port) },
        secretEnv("REDIS_PASSWORD", c.redisPassword),
        { name: "FEAST_REDIS_DB", value: String(c.redis.feastDb) },
    ];
}

/** The Feast environment of docs/contracts.md; credentials by Secret reference only. */
export function feastEnv(c: FeastConnection, repoPath: string): k8s.types.input.core.v1.EnvVar[] {
    return [
        ...feastOnlineEnv(c),
        { name: "FEAST_DB_HOST", value: c.registry.host },
        { name: "FEAST_DB_PORT", value: String(c.registry.port) },
        { name: "FEAST_DB_NAME", value: c.registry.database },
        secretEnv("FEAST_DB_USER", c.registryUser),
        secretEnv("FEAST_DB_PASSWORD", c.registryPassword),
        { name: "FEAST_REPO_PATH", value: repoPath },
    ];
}

export interface FeastArgs {
    namespace: pulumi.Input<string>;
    /** An image with the Feast CLI and `feast_repo/` (the fx-airflow-worker image). */
    image: pulumi.Input<string>;
    connection: FeastConnection;
    resources: ResourceSpec;
    imagePullSecretName?: pulumi.Input<string>;
}

/**
 * `feast apply`: registers the feature definitions of `feast_repo/` in the SQL registry and creates the Redis online
 * store's layout. A Job, so the provider waits for it; rerun by a new image (the Job is replaced).
 */
export class Feast extends pulumi.ComponentResource {
    public readonly applyJob: Workload;

    constructor(name: string, args: FeastArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:app:Feast", name, {}, opts);
        this.applyJob = new Workload(
            "feast-apply",
            {
                namespace: args.namespace,
                component: "feature-store",
                kind: "Job",
                container: {
                    name: "feast-apply",
                    image: args.image,
                    // Overrides the Airflow image's entrypoint: this pod needs neither Airflow nor its database.
                    command: ["feast", "--chdir", FEAST_REPO_PATHS.airflowWorker, "apply"],
                    env: [
                        ...feastEnv(args.connection, FEAST_REPO_PATHS.airflowWorker),
                        { name: "HOME", value: "/tmp" },
                        { name: "PYTHONDONTWRITEBYTECODE", value: "1" },
                    ],
                    resources: args.resources,
                },
                scratch: { tmp: { mountPath: "/tmp" } },
                runAs: AIRFLOW_USER,
                imagePullSecretName: args.imagePullSecretName,
                job: { backoffLimit: 4, activeDeadlineSeconds: 600 },
                await: { timeout: "15m" },
            },
            { parent: this },
        );
        this.registerOutputs({});
    }
}
