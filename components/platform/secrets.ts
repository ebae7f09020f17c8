import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as random from "@pulumi/random";
import { StackConfig } from "../../config/types";
import { labels } from "../../lib/k8s";
import { DATABASES, SECRETS } from "../../lib/contracts";

/** A key of a Kubernetes Secret: what consumers get instead of the value. */
export interface SecretKeyRef {
    readonly name: pulumi.Output<string>;
    readonly key: string;
}

/** `env` entry that reads a Secret key. */
export function secretEnv(envName: string, ref: SecretKeyRef): k8s.types.input.core.v1.EnvVar {
    return { name: envName, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } } };
}

/** Database roles of the pipeline; each owns the database of the same name. */
export const DB_ROLES = [DATABASES.airflow, DATABASES.mlflow, DATABASES.feast] as const;
export type DbRole = (typeof DB_ROLES)[number];

/** Standard base64 to the URL-safe alphabet Fernet requires (padding kept: Fernet keys are 44 characters). */
export function toUrlSafeBase64(b64: string): string {
    return b64.replace(/\+/g, "-").replace(/\//g, "_");
}

export interface SecretsArgs {
    config: StackConfig;
    /** Namespace of the pipeline's Secrets. */
    namespace: pulumi.Input<string>;
    /** Namespace of Grafana's admin Secret. */
    monitoringNamespace: pulumi.Input<string>;
}

/**
 * Every credential of the stack, generated with @pulumi/random or read from secret config, each kept in a
 * Kubernetes Secret with the keys documented on each field below (the README's "Secrets" section says which stack
 * needs which secret config). Consumers get Secret names and keys, never values.
 */
export class Secrets extends pulumi.ComponentResource {
    /** Airflow: `fernet-key`, `webserver-secret-key` (also the Airflow 3 API secret key), `jwt-secret`. */
    public readonly airflowFernetKey: SecretKeyRef;
    public readonly airflowWebserverSecretKey: SecretKeyRef;
    public readonly airflowJwtSecret: SecretKeyRef;
    /** Airflow admin user: `username`, `password`. */
    public readonly airflowAdmin: { username: SecretKeyRef; password: SecretKeyRef };
    /** The basic-auth Secret's name per role, as the Postgres cluster's role definitions take them. */
    public readonly dbRoleSecretNames: Readonly<Record<DbRole, pulumi.Output<string>>>;
    /** One `kubernetes.io/basic-auth` Secret per database role (`username`, `password`), as CloudNativePG expects. */
    public readonly dbRoles: Readonly<
        Record<DbRole, { secretName: pulumi.Output<string>; username: SecretKeyRef; password: SecretKeyRef }>
    >;
    /** Password values of the database roles, as secret outputs, for consumers that must compose a URL in a Secret. */
    public readonly dbPasswords: Readonly<Record<DbRole, pulumi.Output<string>>>;
    /** Redis: `password`. */
    public readonly redisPassword: SecretKeyRef;
    public readonly redisPasswordValue: pulumi.Output<string>;
    /**
     * Redis server config fragment, key `requirepass.conf` (`requirepass <password>`): the redis chart appends every
     * file of this Secret to redis.conf, so it holds nothing else. Same password as `redisPassword`.
     */
    public readonly redisConfigSecretName: pulumi.Output<string>;
    /** Grafana admin, in the monitoring namespace: `admin-user`, `admin-password`. */
    public readonly grafanaAdminSecretName: pulumi.Output<string>;
    /** OANDA v20: `token`, `account-id`; only when the stack collects live candles. */
    public readonly oanda?: { token: SecretKeyRef; accountId: SecretKeyRef };
    /** Hugging Face: `token`; only when configured. */
    public readonly huggingFaceToken?: SecretKeyRef;
    /**
     * Object store credentials of the Postgres backups (`ACCESS_KEY_ID`, `ACCESS_SECRET_KEY`, the keys the cluster
     * chart's ObjectStores read); only when `postgresBackups` is on.
     */
    public readonly backupCredentialsSecretName?: pulumi.Output<string>;
    /** `kubernetes.io/dockerconfigjson` pull secret for a registry with credentials. */
    public readonly imagePullSecretName?: pulumi.Output<string>;

    constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:core:Secrets", name, {}, opts);
        const { config } = args;
        const parent = { parent: this };
        const password = (id: string, length = 32) =>
            pulumi.secret(new random.RandomPassword(`${name}-${id}`, { length, special: false }, parent).result);

        const secret = (
            id: string,
            namespace: pulumi.Input<string>,
            data: Record<string, pulumi.Input<string>>,
            type = "Opaque",
        ) =>
            new k8s.core.v1.Secret(
                `${name}-${id}`,
                {
                    metadata: { name: id, namespace, labels: labels(id, "credentials") },
                    type,
                    // The whole map is a secret output, so Pulumi state and previews never show the values.
                    stringData: pulumi.secret(pulumi.output(data)),
                },
                parent,
            );

        // Fernet wants 32 random bytes in URL-safe base64; RandomBytes gives the standard alphabet.
        const fernetBytes = new random.RandomBytes(`${name}-airflow-fernet`, { length: 32 }, parent);
        const fernetKey = pulumi.secret(fernetBytes.base64.apply(toUrlSafeBase64));
        const ak = SECRETS.airflowKeys;
        const airflowKeys = secret(ak.name, args.namespace, {
            [ak.keys.fernet]: fernetKey,
            [ak.keys.webserverSecret]: password("airflow-webserver-secret-key", 48),
            [ak.keys.jwtSecret]: password("airflow-jwt-secret", 48),
        });
        const keyRef = (s: k8s.core.v1.Secret, key: string): SecretKeyRef => ({ name: s.metadata.name, key });
        this.airflowFernetKey = keyRef(airflowKeys, ak.keys.fernet);
        this.airflowWebserverSecretKey = keyRef(airflowKeys, ak.keys.webserverSecret);
        this.airflowJwtSecret = keyRef(airflowKeys, ak.keys.jwtSecret);

        const aa = SECRETS.airflowAdmin;
        const admin = secret(aa.name, args.namespace, {
            [aa.keys.username]: "admin",
            [aa.keys.password]: password(aa.name),
        });
        this.airflowAdmin = { username: keyRef(admin, aa.keys.username), password: keyRef(admin, aa.keys.password) };

        const roles = {} as Record<
            DbRole,
            { secretName: pulumi.Output<string>; username: SecretKeyRef; password: SecretKeyRef }
        >;
        const dbPasswords = {} as Record<DbRole, pulumi.Output<string>>;
        for (const role of DB_ROLES) {
            const { namePrefix, keys } = SECRETS.dbRole;
            dbPasswords[role] = password(`${namePrefix}${role}`);
            const s = secret(
                `${namePrefix}${role}`,
                args.namespace,
                { [keys.username]: role, [keys.password]: dbPasswords[role] },
                "kubernetes.io/basic-auth",
            );
            roles[role] = {
                secretName: s.metadata.name,
                username: keyRef(s, keys.username),
                password: keyRef(s, keys.password),
            };
        }
        this.dbRoles = roles;
        this.dbRoleSecretNames = {
            airflow: roles.airflow.secretName,
            mlflow: roles.mlflow.secretName,
            feast: roles.feast.secretName,
        };
        this.dbPasswords = dbPasswords;

        this.redisPasswordValue = password("redis");
        const ra = SECRETS.redisAuth;
        const redis = secret(ra.name, args.namespace, { [ra.keys.password]: this.redisPasswordValue });
        this.redisPassword = keyRef(redis, ra.keys.password);
        const redisConfig = secret(SECRETS.redisConfig.name, args.namespace, {
            [SECRETS.redisConfig.keys.requirepass]: pulumi.interpolate`requirepass ${this.redisPasswordValue}\n`,
        });
        this.redisConfigSecretName = redisConfig.metadata.name;

        const ga = SECRETS.grafanaAdmin;
        const grafana = secret(ga.name, args.monitoringNamespace, {
            [ga.keys.user]: config.grafanaAdminUser,
            [ga.keys.password]: password(ga.name),
        });
        this.grafanaAdminSecretName = grafana.metadata.name;

        if (config.data.oandaToken && config.data.oandaAccountId) {
            const { name: oandaName, keys } = SECRETS.oanda;
            const oanda = secret(oandaName, args.namespace, {
                [keys.token]: config.data.oandaToken,
                [keys.accountId]: config.data.oandaAccountId,
            });
            this.oanda = { token: keyRef(oanda, keys.token), accountId: keyRef(oanda, keys.accountId) };
        }

        if (config.fingpt.hfToken) {
            const { name: hfName, keys } = SECRETS.huggingface;
            const hf = secret(hfName, args.namespace, { [keys.token]: config.fingpt.hfToken });
            this.huggingFaceToken = keyRef(hf, keys.token);
        }

        if (config.backup) {
            const { name: backupName, keys } = SECRETS.postgresBackup;
            const creds = secret(backupName, args.namespace, {
                [keys.accessKeyId]: config.backup.accessKeyId,
                [keys.secretAccessKey]: config.backup.secretAccessKey,
            });
            this.backupCredentialsSecretName = creds.metadata.name;
        }

        const { server, username, password: registryPassword } = config.registry;
        if (username && registryPassword) {
            const host = server.split("/")[0];
            const dockerConfig = registryPassword.apply((pw) =>
                JSON.stringify({
                    auths: { [host]: { username, auth: Buffer.from(`${username}:${pw}`).toString("base64") } },
                }),
            );
            const pull = secret(
                SECRETS.registryPull.name,
                args.namespace,
                { [SECRETS.registryPull.keys.dockerConfig]: dockerConfig },
                "kubernetes.io/dockerconfigjson",
            );
            this.imagePullSecretName = pull.metadata.name;
        }

        this.registerOutputs({
            airflowKeysSecret: airflowKeys.metadata.name,
            redisSecret: redis.metadata.name,
            redisConfigSecret: this.redisConfigSecretName,
            grafanaAdminSecret: this.grafanaAdminSecretName,
        });
    }
}
