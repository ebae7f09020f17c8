import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import { parse } from "yaml";
import { chartArchiveName, CHARTS } from "../lib/charts";
import { ClusterTarget } from "../components/platform/cluster";
import {
    AirflowRelease,
    CHOICES,
    Choice,
    ChoiceKey,
    isAirflowRelease,
    RANGES,
    RangeKey,
    SUPPORTED_VERSIONS,
    VERSION_KEYS,
} from "./rules";

export { SUPPORTED_VERSIONS } from "./rules";
export type { AirflowRelease, Choice } from "./rules";

/**
 * The only module that reads `pulumi.Config`. `loadConfig()` reads and validates every key declared in Pulumi.yaml
 * (and the secret keys of config/secrets.yaml) and returns one frozen, typed object; every problem is reported at
 * once, each naming the key, the bad value and what is allowed, before any resource is declared. A key the project
 * does not know, or one set to a value that has no effect on the stack, is a problem too. The ranges and allowed
 * sets are stated once, in config/rules.ts; components take the typed result and do not check it again.
 */

/** The project's root, where Pulumi.yaml and config/ live. */
const PROJECT_ROOT = path.resolve(__dirname, "..");

interface KeyDecl {
    readonly type?: string;
    readonly default?: unknown;
    readonly description?: string;
}
/** The config keys Pulumi.yaml declares in the project's own namespace, with their defaults. */
export const DECLARED: Readonly<Record<string, KeyDecl>> = Object.fromEntries(
    Object.entries<KeyDecl>(parse(fs.readFileSync(path.join(PROJECT_ROOT, "Pulumi.yaml"), "utf8")).config).filter(
        ([key]) => !key.includes(":"),
    ),
);

interface SecretDecl {
    readonly neededWhen: string;
    readonly description: string;
}
/** The secret keys (config/secrets.yaml): not declared in Pulumi.yaml, whose CLI would require every one of them. */
export const SECRET_KEYS: Readonly<Record<string, SecretDecl>> = parse(
    fs.readFileSync(path.join(PROJECT_ROOT, "config/secrets.yaml"), "utf8"),
);

/** CPU request and limit, memory (request = limit, so a pod is never OOM-killed for memory it was promised). */
export interface ResourceSpec {
    readonly cpuRequest: string;
    readonly cpuLimit: string;
    readonly memory: string;
}

export interface Toleration {
    readonly key: string;
    readonly operator: "Exists" | "Equal";
    readonly value?: string;
    readonly effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export const SERVICES = [
    "fastapi",
    "mlflow",
    "airflowScheduler",
    "airflowWebserver",
    "airflowWorker",
    "airflowTriggerer",
    "airflowDagProcessor",
    "fingpt",
    "postgres",
    "prometheus",
] as const;
export type Service = (typeof SERVICES)[number];

/**
 * Where the Helm charts come from: each chart's public repository (lib/charts.ts), a folder of the pinned
 * archives, a chart repository mirror, or an OCI registry (`chartRepository`).
 */
export type ChartOrigin =
    | { readonly kind: "public" }
    | { readonly kind: "folder"; readonly path: string }
    | { readonly kind: "repository"; readonly url: string }
    | { readonly kind: "oci"; readonly url: string };

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
    readonly accessKeyId: pulumi.Output<string>;
    readonly secretAccessKey: pulumi.Output<string>;
    /** Bootstrap from the backups of `from` (a serverName), up to `targetTime` when given. */
    readonly recovery?: { readonly from: string; readonly targetTime?: string };
}

export interface StackConfig {
    readonly project: string;
    readonly stack: string;
    /** The cluster this stack deploys to (kubeContext, kubeconfig); the program's one Kubernetes provider. */
    readonly cluster: ClusterTarget;
    /** Settings that are valid but have no effect (a secret set that this stack does not use), logged as warnings. */
    readonly warnings: readonly string[];
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
    readonly resources: Readonly<Record<Service, ResourceSpec>>;
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
    };
    readonly grafanaAdminUser: string;
}

/**
 * Raised when stack config is invalid; `problems` holds one line per bad key. The stack's name is `stackName`, not
 * `stack`: that would replace Error.stack, which is what the Pulumi CLI prints when a program fails.
 */
export class ConfigValidationError extends Error {
    constructor(
        readonly stackName: string,
        readonly problems: readonly string[],
    ) {
        super(
            `Invalid configuration for stack '${stackName}' (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
                problems.map((p) => `  - ${p}`).join("\n"),
        );
        this.name = "ConfigValidationError";
    }
}

/** The default build context: the reference application in app/. */
export const REFERENCE_APP = "app";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// host[:port][/path], lower case as registries require; no scheme.
const REGISTRY = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;
const CPU = /^([1-9][0-9]*m|[0-9]+(\.[0-9]{1,3})?)$/;
const MEMORY = /^[1-9][0-9]*(Mi|Gi)$/;
const STORAGE = /^[1-9][0-9]*(Mi|Gi|Ti)$/;
/**
 * The label the NVIDIA device plugin chart's node-feature-discovery subchart puts on every node with an NVIDIA PCI
 * device (vendor 10de), on any provider: the GPU pool's default selector when the stack installs the plugin.
 */
export const NFD_NVIDIA_GPU_LABEL = "feature.node.kubernetes.io/pci-10de.present";

const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"] as const;

/** CPU quantity in millicores ("250m" -> 250, "1.5" -> 1500). */
export function cpuMillis(q: string): number {
    return q.endsWith("m") ? Number(q.slice(0, -1)) : Math.round(Number(q) * 1000);
}

/** Memory/storage quantity in MiB ("512Mi" -> 512, "2Gi" -> 2048). */
export function mebibytes(q: string): number {
    const units: Record<string, number> = { Mi: 1, Gi: 1024, Ti: 1024 * 1024 };
    return Number(q.slice(0, -2)) * units[q.slice(-2)];
}

/** Edit distance (insertions, deletions, substitutions), case-insensitive: how far a misspelt key is from a real one. */
function editDistance(a: string, b: string): number {
    a = a.toLowerCase();
    b = b.toLowerCase();
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        const cur = [i];
        for (let j = 1; j <= b.length; j++) {
            cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        }
        prev = cur;
    }
    return prev[b.length];
}

/** The known key nearest to `key`. */
export function nearestKey(key: string, known: readonly string[]): string {
    return known.reduce((best, k) => (editDistance(key, k) < editDistance(key, best) ? k : best));
}

/**
 * Whether the engine passed this key as a secret (`pulumi config set --secret`). The SDK keeps the check internal;
 * without it every unknown key's value is treated as secret, so a misspelt secret is never printed.
 */
function isSecretConfig(fullKey: string): boolean {
    const check = (runtimeConfig as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
    return check ? check(fullKey) : true;
}

/** Reads one key with Pulumi's own validation; a failure becomes a problem line and `undefined`. */
class Reader {
    readonly problems: string[] = [];
    readonly warnings: string[] = [];
    constructor(private readonly cfg: pulumi.Config) {}

    private attempt<T>(fn: () => T): T | undefined {
        try {
            return fn();
        } catch (e) {
            this.problems.push((e as Error).message.split("\n")[0]);
            return undefined;
        }
    }

    fail(key: string, value: unknown, allowed: string): void {
        this.problems.push(
            `Configuration '${this.cfg.name}:${key}' value ${JSON.stringify(value)} is invalid: ${allowed}.`,
        );
    }

    str(key: string, opts?: pulumi.StringConfigOptions & { hint?: string }): string | undefined {
        const value = this.cfg.get(key);
        if (value === undefined) return this.attempt(() => this.cfg.require(key));
        if (opts?.pattern && !new RegExp(opts.pattern).test(value)) {
            this.fail(key, value, opts.hint ?? `must match ${opts.pattern}`);
            return undefined;
        }
        return this.attempt(() => this.cfg.require(key, { ...opts, pattern: undefined }));
    }

    /** One of the words config/rules.ts CHOICES allows for `key`. */
    oneOf<K extends ChoiceKey>(key: K): Choice<K> | undefined {
        return this.attempt(() => this.cfg.require<Choice<K>>(key, { allowedValues: [...CHOICES[key]] }));
    }

    /** A whole number in the range config/rules.ts RANGES gives `key`. */
    int(key: RangeKey): number | undefined {
        const { min, max } = RANGES[key];
        const n = this.attempt(() => this.cfg.requireNumber(key, { min, max }));
        if (n !== undefined && !Number.isInteger(n)) {
            this.fail(key, n, `must be a whole number from ${min} to ${max}`);
            return undefined;
        }
        return n;
    }

    /** The cross-key floor RANGES gives `key` (`atLeast`): its value must be at least the floor key's. */
    atLeastFloor(key: "fastapiMaxReplicas" | "airflowWorkerMaxReplicas", value?: number, floor?: number, why = "") {
        const floorKey = RANGES[key].atLeast;
        if (value !== undefined && floor !== undefined && value < floor) {
            this.fail(key, value, `must be at least ${floorKey} (${floor})${why}`);
        }
    }

    bool(key: string): boolean | undefined {
        return this.attempt(() => this.cfg.requireBoolean(key));
    }

    strings(key: string): string[] | undefined {
        const v = this.attempt(() => this.cfg.requireObject<unknown>(key));
        if (v === undefined) return undefined;
        if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
            this.fail(key, v, "must be a list of strings");
            return undefined;
        }
        return v as string[];
    }

    secret(key: string): pulumi.Output<string> | undefined {
        return this.attempt(() => this.cfg.getSecret(key));
    }

    /** True when the key holds a non-empty value, without reading (and so unwrapping) the secret. */
    has(key: string): boolean {
        const raw = this.cfg.get(key);
        return raw !== undefined && raw !== "";
    }

    /**
     * True when the key holds something other than its Pulumi.yaml default. The CLI merges defaults into the config
     * the program sees, so a value equal to the default is indistinguishable from an unset key (and as harmless).
     */
    changed(key: string): boolean {
        const raw = this.cfg.get(key);
        if (raw === undefined) return false;
        const def = DECLARED[key]?.default;
        if (def === undefined) return raw !== "";
        if (typeof def === "string") return raw !== def;
        try {
            return JSON.stringify(JSON.parse(raw)) !== JSON.stringify(def);
        } catch {
            return true;
        }
    }

    /** A key set away from its default where it does nothing is a problem: the user meant something else. */
    noEffect(key: string, why: string): void {
        // An invalid value is already reported; one problem per key.
        if (!this.changed(key) || this.problems.some((p) => p.includes(`'${this.cfg.name}:${key}'`))) return;
        let value: unknown = this.cfg.get(key);
        try {
            value = JSON.parse(value as string);
        } catch {
            // a plain string value
        }
        this.fail(key, value, `has no effect ${why}; remove it (pulumi config rm ${key})`);
    }

    /** A secret set where the stack does not use it: a warning (it may be set ahead of use), its value never shown. */
    unusedSecret(key: string, why: string): void {
        if (this.has(key)) {
            this.warnings.push(`Configuration '${this.cfg.name}:${key}' is set but has no effect ${why}.`);
        }
    }

    /** A secret the stack needs, named with the command that sets it. */
    needSecret(key: string, why: string): void {
        if (!this.has(key)) {
            this.fail(
                key,
                "<unset>",
                `required ${why}: pulumi config set --secret ${key} <value> --stack ${pulumi.getStack()}`,
            );
        }
    }

    /** One of the releases config/versions.yaml lists for the version key. */
    release(key: keyof typeof VERSION_KEYS, what: string): string | undefined {
        const value = this.cfg.get(key);
        if (value === undefined) return this.attempt(() => this.cfg.require(key));
        const allowed = SUPPORTED_VERSIONS[VERSION_KEYS[key]].releases;
        if (!allowed.includes(value)) {
            this.fail(key, value, `must be ${what} listed in config/versions.yaml: ${allowed.join(", ")}`);
            return undefined;
        }
        return value;
    }

    /**
     * Every key in the project's namespace must be declared (Pulumi.yaml) or a known secret (config/secrets.yaml); a
     * `kubernetes:` key would configure the default Kubernetes provider, which this program never uses.
     */
    unknownKeys(): void {
        const known = [...Object.keys(DECLARED), ...Object.keys(SECRET_KEYS)];
        const prefix = `${this.cfg.name}:`;
        for (const [full, raw] of Object.entries(pulumi.runtime.allConfig())) {
            const shown = isSecretConfig(full) ? "<secret>" : raw;
            if (full.startsWith(prefix)) {
                const key = full.slice(prefix.length);
                if (known.includes(key)) continue;
                this.problems.push(
                    `Configuration '${full}' value ${JSON.stringify(shown)} is invalid: '${key}' is not a key of this project (declared in Pulumi.yaml, secrets in config/secrets.yaml); the nearest is '${nearestKey(key, known)}'.`,
                );
            } else if (full.startsWith("kubernetes:")) {
                this.problems.push(
                    `Configuration '${full}' value ${JSON.stringify(shown)} is invalid: it configures the default Kubernetes provider, which this program never uses; name the cluster with ${prefix}kubeContext (and ${prefix}kubeconfig).`,
                );
            }
        }
    }
}

function parseNodeSelector(r: Reader, key: string, entries: string[]): Record<string, string> {
    const selector: Record<string, string> = {};
    for (const entry of entries) {
        const [k, v, ...rest] = entry.split("=");
        if (v === undefined || rest.length > 0 || !LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) {
            r.fail(key, entry, "each entry must be key=value with a valid Kubernetes label key and value");
            continue;
        }
        selector[k] = v;
    }
    return selector;
}

/** kubectl taint syntax: key[=value]:Effect; no value means operator Exists. */
function parseTolerations(r: Reader, key: string, entries: string[]): Toleration[] {
    const tolerations: Toleration[] = [];
    for (const entry of entries) {
        const m = /^([^=:]+)(=([^:]*))?:([A-Za-z]+)$/.exec(entry);
        const effect = m?.[4] as Toleration["effect"] | undefined;
        if (!m || !LABEL_KEY.test(m[1]) || !effect || !EFFECTS.includes(effect)) {
            r.fail(key, entry, `each entry must be key[=value]:Effect with Effect one of ${EFFECTS.join(", ")}`);
            continue;
        }
        tolerations.push(
            m[2] === undefined
                ? { key: m[1], operator: "Exists", effect }
                : { key: m[1], operator: "Equal", value: m[3], effect },
        );
    }
    return tolerations;
}

function deepFreeze<T>(o: T): T {
    if (o && typeof o === "object" && !pulumi.Output.isInstance(o) && !Object.isFrozen(o)) {
        Object.freeze(o);
        for (const v of Object.values(o as object)) deepFreeze(v);
    }
    return o;
}

/**
 * `kubeconfig` is a path (~ expanded) to a file that must exist; empty means the default lookup. A file's contents
 * are refused: they hold credentials, and plain config is not the place for them.
 */
function resolveKubeconfig(r: Reader, value: string): string | undefined {
    if (value === "") return undefined;
    if (/[\n\r]/.test(value) || /^\s*(apiVersion|clusters|kind)\s*:/m.test(value)) {
        r.fail("kubeconfig", "<kubeconfig contents>", "must be the path of a kubeconfig file, not its contents");
        return undefined;
    }
    const file = value === "~" || value.startsWith("~/") ? path.join(os.homedir(), value.slice(1)) : value;
    const resolved = path.resolve(PROJECT_ROOT, file);
    if (!fs.existsSync(resolved) || !fs.statSync(resolved).isFile()) {
        r.fail("kubeconfig", value, `must be the path of an existing kubeconfig file (${resolved} is not a file)`);
        return undefined;
    }
    return resolved;
}

/**
 * `appContext`: the build context of the images, a folder (relative to the working directory, as docker takes it)
 * with a .dockerignore, so caches, virtualenvs and local secrets stay out of the images and their content tags.
 */
function buildContext(r: Reader, value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    const dir = path.resolve(value);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
        r.fail(
            "appContext",
            value,
            `must be the folder of the application checkout the images are built from (default: ${REFERENCE_APP}); ${dir} is not a folder`,
        );
        return undefined;
    }
    if (!fs.existsSync(path.join(dir, ".dockerignore"))) {
        r.fail(
            "appContext",
            value,
            "the build context needs a .dockerignore, so caches, virtualenvs and local secrets stay out of the images and out of their content tags",
        );
        return undefined;
    }
    return value;
}

/** Reads, validates and freezes the stack configuration; throws ConfigValidationError listing every problem. */
export function loadConfig(): StackConfig {
    const cfg = new pulumi.Config();
    const r = new Reader(cfg);
    const stack = pulumi.getStack();
    r.unknownKeys();

    // The target cluster is named, never taken from the kubeconfig's current context.
    const kubeContext = cfg.get("kubeContext");
    if (kubeContext === undefined || kubeContext.trim() === "") {
        r.fail(
            "kubeContext",
            kubeContext ?? "<unset>",
            `every stack names its cluster: pulumi config set kubeContext <context> --stack ${stack} (kubectl config get-contexts lists them; scripts/kind-up.sh creates kind-fx-ml, scripts/minikube-up.sh fx-ml)`,
        );
    } else if (/\s/.test(kubeContext)) {
        r.fail("kubeContext", kubeContext, "must be a kubeconfig context name, without whitespace");
    }
    const kubeconfig = resolveKubeconfig(r, cfg.get("kubeconfig") ?? "");

    const nsHint = "must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters";
    const namespace = r.str("namespace", { pattern: DNS_LABEL.source, hint: nsHint });
    const monitoringNamespace = r.str("monitoringNamespace", { pattern: DNS_LABEL.source, hint: nsHint });
    if (namespace && namespace === monitoringNamespace) {
        r.fail("monitoringNamespace", monitoringNamespace, "must differ from namespace");
    }

    const server = r.str("registryServer", {
        pattern: REGISTRY.source,
        hint: "must be host[:port][/path] in lower case without a scheme, for example localhost:5001 or ghcr.io/org/fx",
    });
    const username = r.str("registryUsername") || undefined;
    const password = r.secret("registryPassword");
    if (username) r.needSecret("registryPassword", "when registryUsername is set");
    else r.unusedSecret("registryPassword", "without registryUsername (the registry takes no credentials)");

    const appContext = buildContext(r, r.str("appContext", { minLength: 1 }));
    const imagePlatform = r.oneOf("imagePlatform");

    const fastapiReplicas = r.int("fastapiReplicas");
    const fastapiMax = r.int("fastapiMaxReplicas");
    const fastapiWorkers = r.int("fastapiWorkers");
    r.atLeastFloor("fastapiMaxReplicas", fastapiMax, fastapiReplicas);

    const resources = {} as Record<Service, ResourceSpec>;
    for (const svc of SERVICES) {
        const cpuHint = "must be a CPU quantity such as 250m or 1.5";
        const cpuRequest = r.str(`${svc}CpuRequest`, { pattern: CPU.source, hint: cpuHint });
        const cpuLimit = r.str(`${svc}CpuLimit`, { pattern: CPU.source, hint: cpuHint });
        const memory = r.str(`${svc}Memory`, {
            pattern: MEMORY.source,
            hint: "must be a memory quantity in Mi or Gi, such as 512Mi",
        });
        if (cpuRequest && cpuLimit && cpuMillis(cpuLimit) < cpuMillis(cpuRequest)) {
            r.fail(`${svc}CpuLimit`, cpuLimit, `must be at least ${svc}CpuRequest (${cpuRequest})`);
        }
        resources[svc] = { cpuRequest: cpuRequest ?? "", cpuLimit: cpuLimit ?? "", memory: memory ?? "" };
    }

    const storageHint = "must be a storage size in Mi, Gi or Ti, such as 5Gi";
    const size = (key: string) => r.str(key, { pattern: STORAGE.source, hint: storageHint });
    const storageClass = r.str("storageClass", {
        pattern: `^$|${DNS_SUBDOMAIN.source}`,
        hint: "must be empty (cluster default) or a StorageClass name",
    });

    const postgresVersion = r.release("postgresVersion", "a Postgres major with a CloudNativePG image");
    const redisVersion = r.release("redisVersion", "a tag of the official redis image");
    // Every listed Airflow release is 2.x or 3.x (config/rules.ts checks the file as it loads).
    const airflowRelease = r.release("airflowVersion", "an Apache Airflow release");
    const airflowVersion = airflowRelease && isAirflowRelease(airflowRelease) ? airflowRelease : undefined;
    const mlflowVersion = r.release("mlflowVersion", "an MLflow release");
    // The reference app (appContext "app") is written for Airflow 3 (airflow.sdk, DeadlineAlert) and ships MLflow 3
    // clients; the seed's 2.x releases stay selectable for a pipeline checkout of your own that targets them.
    if (appContext === REFERENCE_APP) {
        const major = (v: string) => Number(v.split(".")[0]);
        const airflowMajor = SUPPORTED_VERSIONS.airflow.referenceAppMajor;
        if (airflowVersion && major(airflowVersion) !== airflowMajor) {
            r.fail(
                "airflowVersion",
                airflowVersion,
                `the reference app's DAGs need Airflow ${airflowMajor}.x; Airflow ${major(airflowVersion)}.x needs appContext pointing at a pipeline checkout written for it`,
            );
        }
        const mlflowMajor = SUPPORTED_VERSIONS.mlflow.referenceAppMajor;
        if (mlflowVersion && major(mlflowVersion) !== mlflowMajor) {
            r.fail(
                "mlflowVersion",
                mlflowVersion,
                `the reference app logs models with MLflow ${mlflowMajor} clients; an MLflow ${major(mlflowVersion)}.x server needs appContext pointing at a pipeline checkout with MLflow ${major(mlflowVersion)} clients`,
            );
        }
    }

    const fingptEnabled = r.bool("fingptEnabled");
    const fingptMode = r.oneOf("fingptMode");
    const hfRepo = "^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$";
    const baseModel = r.str("fingptBaseModel", { pattern: hfRepo, hint: "must be a Hugging Face id owner/name" });
    const adapter = r.str("fingptAdapter", { pattern: hfRepo, hint: "must be a Hugging Face id owner/name" });
    const hfToken = r.secret("hfToken");
    const fingptModel = fingptEnabled === true && fingptMode === "model";
    if (fingptEnabled === false) {
        const why = "while fingptEnabled is false";
        for (const key of ["fingptMode", "fingptBaseModel", "fingptAdapter", "fingptCacheStorage"])
            r.noEffect(key, why);
        for (const key of ["fingptCpuRequest", "fingptCpuLimit", "fingptMemory"]) r.noEffect(key, why);
    } else if (fingptMode === "lexicon") {
        const why = "in fingptMode lexicon (the CPU scorer loads no model)";
        for (const key of ["fingptBaseModel", "fingptAdapter", "fingptCacheStorage"]) r.noEffect(key, why);
    }
    // The default base model is gated on Hugging Face: without a token the pod fails at download, not here.
    if (fingptModel) r.needSecret("hfToken", "when FinGPT runs in model mode (to download the gated base model)");
    else r.unusedSecret("hfToken", "unless FinGPT runs in model mode (fingptEnabled true, fingptMode model)");

    const gpuEnabled = r.bool("gpuEnabled");
    const gpuCount = r.int("gpuCount");
    let nodeSelector = parseNodeSelector(r, "gpuNodeSelector", r.strings("gpuNodeSelector") ?? []);
    const tolerations = parseTolerations(r, "gpuTolerations", r.strings("gpuTolerations") ?? []);
    const installDevicePlugin = r.bool("installDevicePlugin");
    if (gpuEnabled === false) {
        for (const key of ["gpuCount", "gpuNodeSelector", "gpuTolerations"]) {
            r.noEffect(key, "while gpuEnabled is false (set gpuEnabled=true on a cluster with a GPU pool)");
        }
    } else if (gpuEnabled && !fingptModel) {
        r.noEffect("gpuCount", "unless FinGPT runs in model mode (the only pod that asks for a GPU)");
    }
    // With the plugin, its chart's node-feature-discovery labels the GPU nodes: a fresh pool needs no hand labels.
    if (installDevicePlugin && gpuEnabled && Object.keys(nodeSelector).length === 0) {
        nodeSelector = { [NFD_NVIDIA_GPU_LABEL]: "true" };
    }
    if (fingptModel && gpuEnabled === false) {
        r.fail(
            "fingptEnabled",
            true,
            "FinGPT in model mode needs a GPU pool: set gpuEnabled=true with gpuNodeSelector/gpuTolerations, or fingptMode=lexicon, or fingptEnabled=false",
        );
    }
    if (gpuEnabled && Object.keys(nodeSelector).length === 0 && tolerations.length === 0) {
        r.fail(
            "gpuNodeSelector",
            [],
            "gpuEnabled needs the GPU pool's gpuNodeSelector or gpuTolerations, or FinGPT could land on a CPU node",
        );
    }
    if (installDevicePlugin && gpuEnabled === false) {
        r.fail("installDevicePlugin", true, "the NVIDIA device plugin needs gpuEnabled=true");
    }

    const domain = r.str("domain", {
        pattern: DNS_SUBDOMAIN.source,
        hint: "must be a lower-case DNS name such as fx-ml.example.com",
    });
    const ingressClass = r.str("ingressClass", { pattern: DNS_SUBDOMAIN.source, hint: "must be an IngressClass name" });
    const ingressControllerNamespace = r.str("ingressControllerNamespace", { pattern: DNS_LABEL.source, hint: nsHint });
    const installCertManager = r.bool("installCertManager");
    const tlsIssuer = r.oneOf("tlsIssuer");
    const acmeEmail =
        r.str("acmeEmail", { pattern: "^$|^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", hint: "must be an e-mail address" }) ||
        undefined;
    const acmeServer = r.str("acmeServer", {
        pattern: "^https://\\S+$",
        hint: "must be an https:// ACME directory URL",
    });
    if (tlsIssuer === "acme" && !acmeEmail) {
        r.fail("acmeEmail", "", "required when tlsIssuer is acme");
    }
    if (tlsIssuer === "selfsigned") {
        for (const key of ["acmeEmail", "acmeServer"]) r.noEffect(key, "while tlsIssuer is selfsigned");
    }

    const source = r.oneOf("dataSource");
    const oandaEnvironment = r.oneOf("oandaEnvironment");
    const oandaToken = r.secret("oandaToken");
    const oandaAccountId = r.secret("oandaAccountId");
    for (const key of ["oandaToken", "oandaAccountId"]) {
        if (source === "oanda") {
            r.needSecret(key, "when dataSource is oanda (or set dataSource=sample to run on synthetic candles)");
        } else if (source === "sample") {
            r.unusedSecret(key, "while dataSource is sample");
        }
    }
    if (source === "sample") r.noEffect("oandaEnvironment", "while dataSource is sample");
    const instruments = r.strings("instruments");
    if (instruments) {
        if (instruments.length === 0) r.fail("instruments", instruments, "must name at least one instrument");
        for (const i of instruments) {
            if (!/^[A-Z]{3}_[A-Z]{3}$/.test(i))
                r.fail("instruments", i, "each instrument must be BASE_QUOTE, such as USD_SGD");
        }
    }

    // Read once each: a key read twice would report its problem twice.
    const backupsOn = r.bool("postgresBackups");
    const workerAutoscaling = r.bool("airflowWorkerAutoscaling");
    const charts = chartOrigin(r, r.str("chartRepository"), {
        gpu: installDevicePlugin === true,
        certManager: installCertManager === true,
        backups: backupsOn === true,
        keda: workerAutoscaling === true,
    });

    const retention = r.str("prometheusRetention", {
        pattern: "^[1-9][0-9]*(h|d|w|y)$",
        hint: "must be a duration such as 48h or 15d",
    });
    const postgresInstances = r.int("postgresInstances");
    const backup = readBackup(r, backupsOn);
    const grafanaAdminUser = r.str("grafanaAdminUser", {
        pattern: "^[A-Za-z0-9._-]{1,64}$",
        hint: "letters, digits, '.', '_' or '-'",
    });

    const mlflowObjectStore = readMlflowObjectStore(r);
    const storage = {
        storageClass: storageClass || undefined,
        mlflowObjectStore,
        postgres: size("postgresStorage") ?? "",
        redis: size("redisStorage") ?? "",
        mlflowArtifacts: size("mlflowArtifactStorage") ?? "",
        fingptCache: size("fingptCacheStorage") ?? "",
        prometheus: size("prometheusStorage") ?? "",
        retainOnDelete: r.bool("retainDataOnDelete") ?? true,
    };
    const webserverReplicas = r.int("airflowWebserverReplicas");
    const apiWorkers = r.int("airflowApiWorkers");
    const workerReplicas = r.int("airflowWorkerReplicas");
    const workerMax = r.int("airflowWorkerMaxReplicas");
    const queueTarget = r.int("airflowWorkerQueueTarget");
    if (workerAutoscaling === false) {
        for (const key of ["airflowWorkerMaxReplicas", "airflowWorkerQueueTarget"])
            r.noEffect(key, "while airflowWorkerAutoscaling is false");
    } else if (workerAutoscaling) {
        r.atLeastFloor("airflowWorkerMaxReplicas", workerMax, workerReplicas, ", the floor");
    }

    if (r.problems.length > 0) throw new ConfigValidationError(stack, r.problems);

    // Every value below passed validation; the non-null assertions only restate that.
    return deepFreeze({
        project: pulumi.getProject(),
        stack,
        cluster: { context: kubeContext!, ...(kubeconfig ? { kubeconfig } : {}) },
        warnings: r.warnings,
        namespace: namespace!,
        monitoringNamespace: monitoringNamespace!,
        registry: { server: server!, username, password: username ? password : undefined },
        appContext: appContext!,
        charts: charts!,
        imagePlatform: imagePlatform!,
        replicas: {
            fastapi: fastapiReplicas!,
            fastapiMax: fastapiMax!,
            fastapiWorkers: fastapiWorkers!,
            airflowWorker: workerReplicas!,
            airflowWebserver: webserverReplicas!,
            airflowApiWorkers: apiWorkers!,
            airflowWorkerAutoscaling: workerAutoscaling ? { max: workerMax!, queueTarget: queueTarget! } : undefined,
        },
        resources,
        storage,
        prometheusRetention: retention!,
        postgresInstances: postgresInstances!,
        backup,
        versions: {
            postgres: postgresVersion!,
            redis: redisVersion!,
            airflow: airflowVersion!,
            mlflow: mlflowVersion!,
        },
        fingpt: {
            enabled: fingptEnabled!,
            mode: fingptMode!,
            baseModel: baseModel!,
            adapter: adapter!,
            hfToken: fingptModel ? hfToken : undefined,
        },
        gpu: {
            enabled: gpuEnabled!,
            count: gpuCount!,
            nodeSelector,
            tolerations,
            installDevicePlugin: installDevicePlugin!,
        },
        edge: {
            domain: domain!,
            ingressClass: ingressClass!,
            ingressControllerNamespace: ingressControllerNamespace!,
            installCertManager: installCertManager!,
            tlsIssuer: tlsIssuer!,
            acmeEmail,
            acmeServer: acmeServer!,
        },
        data: {
            source: source!,
            oandaEnvironment: oandaEnvironment!,
            oandaToken: source === "oanda" ? oandaToken : undefined,
            oandaAccountId: source === "oanda" ? oandaAccountId : undefined,
            instruments: instruments!,
        },
        grafanaAdminUser: grafanaAdminUser!,
    });
}

/** An S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-'), then an optional path of plain segments. */
const S3_DESTINATION = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/[A-Za-z0-9._-]+)*$/;
/** What S3_DESTINATION allows, in words, for the errors of every key that takes it. */
const S3_DESTINATION_FORM =
    "s3://<bucket>[/<path>]: a bucket of 3 to 63 lower-case letters, digits, '.' or '-', then path segments of letters, digits, '.', '_' or '-'";
/** An object store's endpoint: https://host[/path]. */
const HTTPS_ENDPOINT = /^https:\/\/[^\s/]+(\/\S*)?$/;
/** One field of a cron expression (robfig/cron, which CloudNativePG uses): numbers, names, `*`, `?`, `/`, `,`, `-`. */
const CRON_FIELD = /^[0-9A-Za-z*?/,-]+$/;
/** RFC 3339 with a zone (Z or an offset), as CloudNativePG's recoveryTarget.targetTime parses it. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** `mlflowArtifactDestination` and its endpoint and credentials Secret; a PVC size there has no effect. */
function readMlflowObjectStore(r: Reader): StackConfig["storage"]["mlflowObjectStore"] {
    const destination = r.str("mlflowArtifactDestination", {
        pattern: `^$|${S3_DESTINATION.source}`,
        hint: `must be empty (a PVC) or ${S3_DESTINATION_FORM}`,
    });
    const endpoint = r.str("mlflowArtifactEndpoint", {
        pattern: `^$|${HTTPS_ENDPOINT.source}`,
        hint: "must be empty (AWS S3) or the object store's https:// endpoint, such as https://storage.googleapis.com",
    });
    const credentialsSecret = r.str("mlflowArtifactCredentialsSecret", {
        pattern: `^$|${DNS_SUBDOMAIN.source}`,
        hint: "must be empty or the name of a Secret in the pipeline namespace",
    });
    if (destination === "") {
        for (const key of ["mlflowArtifactEndpoint", "mlflowArtifactCredentialsSecret"])
            r.noEffect(key, "while mlflowArtifactDestination is empty (artifacts on the PVC)");
        return undefined;
    }
    if (destination === undefined) return undefined;
    r.noEffect("mlflowArtifactStorage", "while mlflowArtifactDestination is set (no artifact PVC)");
    return {
        destination,
        ...(endpoint ? { endpoint } : {}),
        ...(credentialsSecret ? { credentialsSecret } : {}),
    };
}

/** `postgresBackups` and the keys that go with it; every bad or missing one is a problem before anything exists. */
function readBackup(r: Reader, enabled: boolean | undefined): BackupConfig | undefined {
    const destination = r.str("backupDestination", {
        pattern: `^$|${S3_DESTINATION.source}`,
        hint: `must be ${S3_DESTINATION_FORM} (Google Cloud Storage and other S3-compatible stores take the s3:// form with their backupEndpoint)`,
    });
    const endpoint = r.str("backupEndpoint", {
        pattern: `^$|${HTTPS_ENDPOINT.source}`,
        hint: "must be the object store's https:// endpoint, such as https://s3.eu-west-1.amazonaws.com or https://storage.googleapis.com",
    });
    const schedule = r.str("backupSchedule");
    const retention = r.str("backupRetention", {
        pattern: "^[1-9][0-9]*[dwm]$",
        hint: "must be a number followed by d, w or m (days, weeks, months), such as 30d",
    });
    const serverName = r.str("backupServerName", {
        pattern: DNS_LABEL.source,
        hint: "must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters",
    });
    const recoverFrom = r.str("postgresRecoverFrom", {
        pattern: `^$|${DNS_LABEL.source}`,
        hint: "must be empty or the backupServerName of the cluster whose backups to restore, such as fx-postgres",
    });
    const target = r.str("postgresRecoveryTarget");
    const accessKeyId = r.secret("backupAccessKeyId");
    const secretAccessKey = r.secret("backupSecretAccessKey");

    if (schedule !== undefined) {
        const fields = schedule.trim().split(/\s+/);
        if (fields.length !== 6 || !fields.every((f) => CRON_FIELD.test(f))) {
            r.fail(
                "backupSchedule",
                schedule,
                `must be a six-field cron expression with seconds first, as CloudNativePG's ScheduledBackup takes it, such as "0 0 2 * * *" (02:00 daily)${fields.length === 5 ? "; a five-field cron lacks the seconds" : ""}`,
            );
        }
    }
    if (target) {
        if (!RFC3339.test(target) || Number.isNaN(Date.parse(target))) {
            r.fail(
                "postgresRecoveryTarget",
                target,
                "must be empty or an RFC 3339 time with its zone, such as 2026-11-30T14:05:00Z",
            );
        } else if (!recoverFrom) {
            r.fail(
                "postgresRecoveryTarget",
                target,
                "a point in time needs postgresRecoverFrom, the backups to replay",
            );
        }
    }

    if (enabled === false) {
        const why = "while postgresBackups is false";
        for (const key of [
            "backupDestination",
            "backupEndpoint",
            "backupSchedule",
            "backupRetention",
            "backupServerName",
            "postgresRecoveryTarget",
        ])
            r.noEffect(key, why);
        if (recoverFrom) {
            r.fail(
                "postgresRecoverFrom",
                recoverFrom,
                "a recovery reads the backups of backupDestination: set postgresBackups=true with backupDestination, backupEndpoint and the backup credentials",
            );
        }
        for (const key of ["backupAccessKeyId", "backupSecretAccessKey"]) r.unusedSecret(key, why);
        return undefined;
    }
    if (enabled !== true) return undefined;

    if (destination === "") {
        r.fail("backupDestination", "", "required when postgresBackups is true: s3://<bucket>[/<path>]");
    }
    if (endpoint === "") {
        r.fail(
            "backupEndpoint",
            "",
            "required when postgresBackups is true: the object store's https:// endpoint, such as https://s3.eu-west-1.amazonaws.com",
        );
    }
    if (recoverFrom && serverName && recoverFrom === serverName) {
        r.fail(
            "postgresRecoverFrom",
            recoverFrom,
            `must differ from backupServerName (${serverName}): the restored cluster cannot archive its WAL into the folder it restores from; set backupServerName to a new name such as ${serverName}-2`,
        );
    }
    r.needSecret("backupAccessKeyId", "when postgresBackups is true (the object store's access key id)");
    r.needSecret("backupSecretAccessKey", "when postgresBackups is true (the object store's secret access key)");
    if (!destination || !endpoint || !schedule || !retention || !serverName || !accessKeyId || !secretAccessKey) {
        return undefined;
    }
    return {
        destination,
        endpoint,
        schedule: schedule.trim().split(/\s+/).join(" "),
        retention,
        serverName,
        accessKeyId,
        secretAccessKey,
        ...(recoverFrom ? { recovery: { from: recoverFrom, ...(target ? { targetTime: target } : {}) } } : {}),
    };
}

/**
 * `chartRepository`: empty -> public repositories; https:// -> a mirror; oci:// -> a registry; anything else is a
 * folder that must hold the archive of every chart this stack installs (`<chart>-<version>.tgz`, as `helm package`
 * names them), checked now so a missing one is named before anything is created.
 */
function chartOrigin(
    r: Reader,
    value: string | undefined,
    uses: { gpu: boolean; certManager: boolean; backups: boolean; keda: boolean },
): ChartOrigin | undefined {
    if (value === undefined) return undefined;
    if (value === "") return { kind: "public" };
    if (/^https:\/\/\S+$/.test(value)) return { kind: "repository", url: value.replace(/\/+$/, "") };
    if (/^oci:\/\/\S+$/.test(value)) return { kind: "oci", url: value.replace(/\/+$/, "") };
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
        r.fail("chartRepository", value, "must be empty, an https:// or oci:// URL, or a folder of chart archives");
        return undefined;
    }
    // Relative to the project, as Pulumi.yaml says (the same whatever the working directory).
    const folder = path.resolve(PROJECT_ROOT, value);
    if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
        r.fail("chartRepository", value, `the folder ${folder} does not exist`);
        return undefined;
    }
    const optional: Partial<Record<keyof typeof CHARTS, boolean>> = {
        nvidiaDevicePlugin: uses.gpu,
        certManager: uses.certManager,
        barmanCloud: uses.backups,
        keda: uses.keda,
    };
    const needed = Object.entries(CHARTS)
        .filter(([key]) => optional[key as keyof typeof CHARTS] !== false)
        .map(([, ref]) => chartArchiveName(ref));
    const missing = needed.filter((f) => !fs.existsSync(path.join(folder, f)));
    if (missing.length > 0) {
        r.fail("chartRepository", value, `the folder lacks the pinned chart archives ${missing.join(", ")}`);
        return undefined;
    }
    return { kind: "folder", path: folder };
}
