import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as random from "@pulumi/random";
import type { BackupCredentials, StackConfig } from "../../config/types";
import { labels } from "../../lib/k8s";
import { DATABASES, REDIS_DBS, SECRETS } from "../../lib/contracts";

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

type SecretData = Record<string, pulumi.Input<string>>;

const encoded = (s: pulumi.Input<string>) => pulumi.output(s).apply(encodeURIComponent);

/** `<role>:<password>@host:port/<role>` (each role owns the database of its name), the password URL-encoded. */
export function postgresLogin(
    role: DbRole,
    password: pulumi.Input<string>,
    at: { host: pulumi.Input<string>; port: number },
): pulumi.Output<string> {
    return pulumi.interpolate`${role}:${encoded(password)}@${at.host}:${at.port}/${role}`;
}

/** `redis://:<password>@<address>/<db>`, the password URL-encoded. */
export function redisUrl(
    password: pulumi.Input<string>,
    address: pulumi.Input<string>,
    db: number,
): pulumi.Output<string> {
    return pulumi.interpolate`redis://:${encoded(password)}@${address}/${db}`;
}

export interface SecretsArgs {
    /** Namespace of the pipeline's Secrets. */
    namespace: pulumi.Input<string>;
    /** Namespace of Grafana's admin Secret. */
    monitoringNamespace: pulumi.Input<string>;
    /** Grafana's admin user name (config grafanaAdminUser). */
    grafanaAdminUser: string;
    /** The registry and its credentials (config registry*): a pull Secret when it takes credentials. */
    registry: StackConfig["registry"];
    /** OANDA v20 credentials (secret config), when the stack collects live candles. */
    oanda?: { token: pulumi.Output<string>; accountId: pulumi.Output<string> };
    /** Hugging Face token (secret config hfToken), when FinGPT runs in model mode. */
    huggingFaceToken?: pulumi.Output<string>;
    /** The object store's credentials of the Postgres backups (secret config), when backups are on. */
    backupCredentials?: BackupCredentials;
}

/** Where the connection Secrets point: the addresses the data components give. */
export interface ConnectionTargets {
    postgres: { host: pulumi.Input<string>; port: number };
    redis: { address: pulumi.Input<string> };
}

/** The connection strings that hold a password, by Secret key. */
export interface Connections {
    /** Airflow's metadata database, Celery result backend and broker (Redis database 1). */
    airflow: { sqlAlchemyConn: SecretKeyRef; resultBackend: SecretKeyRef; brokerUrl: SecretKeyRef };
    /** MLflow's backend store URI. */
    mlflowBackendStore: SecretKeyRef;
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
    /** Redis: `password`. */
    public readonly redisPassword: SecretKeyRef;
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

    /** The generated passwords: they stay in this component, which composes every string that holds one. */
    private readonly dbPasswords: Readonly<Record<DbRole, pulumi.Output<string>>>;
    private readonly redisPasswordValue: pulumi.Output<string>;
    private readonly name: string;
    private readonly namespace: pulumi.Input<string>;

    constructor(name: string, args: SecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super(
            "fx:platform:Secrets",
            name,
            {},
            { ...opts, aliases: [{ type: "fx:core:Secrets" }, ...(opts?.aliases ?? [])] },
        );
        this.name = name;
        this.namespace = args.namespace;
        const parent = { parent: this };
        const password = (id: string, length = 32) =>
            pulumi.secret(new random.RandomPassword(`${name}-${id}`, { length, special: false }, parent).result);
        const secret = (id: string, namespace: pulumi.Input<string>, data: SecretData, type = "Opaque") =>
            this.secret(`${name}-${id}`, id, namespace, data, type);

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
            [ga.keys.user]: args.grafanaAdminUser,
            [ga.keys.password]: password(ga.name),
        });
        this.grafanaAdminSecretName = grafana.metadata.name;

        if (args.oanda) {
            const { name: oandaName, keys } = SECRETS.oanda;
            const oanda = secret(oandaName, args.namespace, {
                [keys.token]: args.oanda.token,
                [keys.accountId]: args.oanda.accountId,
            });
            this.oanda = { token: keyRef(oanda, keys.token), accountId: keyRef(oanda, keys.accountId) };
        }

        if (args.huggingFaceToken) {
            const { name: hfName, keys } = SECRETS.huggingface;
            const hf = secret(hfName, args.namespace, { [keys.token]: args.huggingFaceToken });
            this.huggingFaceToken = keyRef(hf, keys.token);
        }

        if (args.backupCredentials) {
            const { name: backupName, keys } = SECRETS.postgresBackup;
            const creds = secret(backupName, args.namespace, {
                [keys.accessKeyId]: args.backupCredentials.accessKeyId,
                [keys.secretAccessKey]: args.backupCredentials.secretAccessKey,
            });
            this.backupCredentialsSecretName = creds.metadata.name;
        }

        const { server, username, password: registryPassword } = args.registry;
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
    /** A Secret of this component: the whole map is a secret output, so state and previews never show the values. */
    private secret(
        resourceName: string,
        id: string,
        namespace: pulumi.Input<string>,
        data: SecretData,
        type = "Opaque",
        opts: pulumi.CustomResourceOptions = {},
    ): k8s.core.v1.Secret {
        return new k8s.core.v1.Secret(
            resourceName,
            {
                metadata: { name: id, namespace, labels: labels(id, "credentials") },
                type,
                stringData: pulumi.secret(pulumi.output(data)),
            },
            { ...opts, parent: this },
        );
    }

    /**
     * The connection strings that hold a password, composed here where the passwords live, into the Secrets their
     * consumers read by key: Airflow's database, result backend and Celery broker, MLflow's backend store. The data
     * components give the addresses.
     */
    connections(to: ConnectionTargets): Connections {
        const pg = (role: DbRole) => postgresLogin(role, this.dbPasswords[role], to.postgres);
        const ac = SECRETS.airflowConnections;
        // Each was its consumer's child until the credentials moved here: the aliases keep the Secrets in place.
        const airflow = this.secret(
            `${this.name}-airflow-connections`,
            ac.name,
            this.namespace,
            {
                [ac.keys.sqlAlchemyConn]: pulumi.interpolate`postgresql+psycopg2://${pg(DATABASES.airflow)}`,
                [ac.keys.resultBackend]: pulumi.interpolate`db+postgresql://${pg(DATABASES.airflow)}`,
                [ac.keys.brokerUrl]: redisUrl(this.redisPasswordValue, to.redis.address, REDIS_DBS.celeryBroker),
            },
            "Opaque",
            { aliases: [{ name: "fx-connections", parent: pulumi.createUrn("fx", "fx:app:Airflow") }] },
        );
        const mb = SECRETS.mlflowBackendStore;
        const mlflow = this.secret(
            `${this.name}-mlflow-backend-store`,
            mb.name,
            this.namespace,
            { [mb.keys.uri]: pulumi.interpolate`postgresql+psycopg2://${pg(DATABASES.mlflow)}` },
            "Opaque",
            { aliases: [{ name: "fx-backend-store", parent: pulumi.createUrn("fx", "fx:app:Mlflow") }] },
        );
        const ref = (s: k8s.core.v1.Secret, key: string): SecretKeyRef => ({ name: s.metadata.name, key });
        return {
            airflow: {
                sqlAlchemyConn: ref(airflow, ac.keys.sqlAlchemyConn),
                resultBackend: ref(airflow, ac.keys.resultBackend),
                brokerUrl: ref(airflow, ac.keys.brokerUrl),
            },
            mlflowBackendStore: ref(mlflow, mb.keys.uri),
        };
    }
}
