import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { ResourceSpec } from "../../lib/k8s";
import { SecretKeyRef, secretEnv } from "../platform/secrets";
import { AIRFLOW_USER, Workload } from "../../lib/workload";
import { APP, DATABASES, ENV, IMAGE_PATHS } from "../../lib/contracts";

/**
 * How Feast reaches its SQL registry and offline store (Postgres `feast` database, which also holds the pipeline's
 * tables between tasks) and its Redis online store.
 */
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
        registry: { host: postgres.host, port: postgres.port, database: DATABASES.feast },
        ...credentials,
    };
}

/**
 * Only the online store (Redis): for readers such as FastAPI, which never touch the registry and so get no
 * Postgres credentials.
 */
export function feastOnlineEnv(c: Pick<FeastConnection, "redis" | "redisPassword">): k8s.types.input.core.v1.EnvVar[] {
    const e = ENV.feastOnline;
    return [
        { name: e.redisHost, value: c.redis.host },
        { name: e.redisPort, value: String(c.redis.port) },
        secretEnv(e.redisPassword, c.redisPassword),
        { name: e.redisDb, value: String(c.redis.feastDb) },
    ];
}

/**
 * What feature_store.yaml substitutes: the online store and the SQL registry, credentials by Secret reference only.
 * Where `feast_repo/` is stays with the caller: the CLI is pointed at it, the pipeline's tasks read it from the env.
 */
export function feastEnv(c: FeastConnection): k8s.types.input.core.v1.EnvVar[] {
    const e = ENV.feastRegistry;
    return [
        ...feastOnlineEnv(c),
        { name: e.host, value: c.registry.host },
        { name: e.port, value: String(c.registry.port) },
        { name: e.database, value: c.registry.database },
        secretEnv(e.user, c.registryUser),
        secretEnv(e.password, c.registryPassword),
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
        super("fx:data:Feast", name, {}, { ...opts, aliases: [{ type: "fx:app:Feast" }, ...(opts?.aliases ?? [])] });
        this.applyJob = new Workload(
            APP.feastApply,
            {
                namespace: args.namespace,
                component: "feature-store",
                kind: "Job",
                container: {
                    name: "feast-apply",
                    image: args.image,
                    // Overrides the Airflow image's entrypoint: this pod needs neither Airflow nor its database.
                    command: ["feast", "--chdir", IMAGE_PATHS.feastRepoAirflowWorker, "apply"],
                    env: [
                        ...feastEnv(args.connection),
                        // The home folder stays the image's (/home/airflow): Python finds the Airflow image's
                        // packages, Feast among them, in that user's site folder (~/.local); another one hides them.
                        { name: ENV.process.pythonDontWriteBytecode, value: "1" },
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
