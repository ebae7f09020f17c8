import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

/**
 * Every rule of stack config, stated once as data: ranges, allowed sets, patterns with the hint a user reads, and when
 * a key has no effect or a secret is needed. config/validate.ts applies them, the components take the typed result and
 * never check it again, and `descriptionProblems` holds the prose of Pulumi.yaml (and so the README table generated
 * from it) to them (run by `node scripts/config-docs.mjs --check` and test/config.test.ts).
 * No Pulumi import: the docs script loads this module on its own.
 */

const CONFIG_DIR = __dirname;

/** A whole-number key: `min` to `max`, and at least the key `atLeast` names where there is one. */
export interface IntRange {
    readonly min: number;
    readonly max: number;
    readonly atLeast?: string;
}

/**
 * The integer keys. Each bound says why it is there: above it the stack is no longer the pipeline this project
 * sizes (its Postgres connections, its node count), or the pod could not be scheduled at all.
 */
export const RANGES = {
    fastapiReplicas: { min: 1, max: 20 },
    fastapiMaxReplicas: { min: 1, max: 50, atLeast: "fastapiReplicas" },
    fastapiWorkers: { min: 1, max: 8 },
    airflowWorkerReplicas: { min: 1, max: 20 },
    airflowWebserverReplicas: { min: 1, max: 5 },
    airflowApiWorkers: { min: 1, max: 8 },
    airflowWorkerMaxReplicas: { min: 1, max: 20, atLeast: "airflowWorkerReplicas" },
    airflowWorkerQueueTarget: { min: 1, max: 1000 },
    // 1 primary + up to 4 replicas; CloudNativePG would take more, the pipeline's load never needs them.
    postgresInstances: { min: 1, max: 5 },
    // A pod runs on one node, and no GPU node offers more than 8: a larger limit could never be scheduled.
    gpuCount: { min: 1, max: 8 },
} as const satisfies Readonly<Record<string, IntRange>>;
export type RangeKey = keyof typeof RANGES;

/** The keys that take one of a fixed set of words. */
export const CHOICES = {
    imagePlatform: ["linux/amd64", "linux/arm64"],
    fingptMode: ["model", "lexicon"],
    tlsIssuer: ["selfsigned", "acme"],
    dataSource: ["oanda", "sample"],
    oandaEnvironment: ["practice", "live"],
} as const satisfies Readonly<Record<string, readonly string[]>>;
export type ChoiceKey = keyof typeof CHOICES;
export type Choice<K extends ChoiceKey> = (typeof CHOICES)[K][number];

export interface VersionList {
    readonly releases: readonly string[];
    /** The major release the reference app (appContext: app) is written for. */
    readonly referenceAppMajor?: number;
    /** Postgres only: the exact image of each major; its keys are the releases. */
    readonly images?: Readonly<Record<string, string>>;
}
export type VersionListName = "postgres" | "redis" | "airflow" | "mlflow";

/**
 * An Airflow release the Airflow component renders: 2.x (webserver) or 3.x (api-server, dag-processor). Every release
 * config/versions.yaml lists is one (checked as the file loads), so the component needs no check of its own.
 */
export type AirflowRelease = `2.${string}` | `3.${string}`;
export function isAirflowRelease(v: string): v is AirflowRelease {
    return /^[23]\.[0-9]+\.[0-9]+$/.test(v);
}

/**
 * The lists of a versions file (`doc`, parsed from `file`); a list the components could not deploy is an error of the
 * file, named here.
 */
export function checkVersions(
    file: string,
    doc: Readonly<Record<VersionListName, VersionList>>,
): Readonly<Record<VersionListName, VersionList>> {
    const { images } = doc.postgres;
    if (!images || Object.keys(images).length === 0) {
        throw new Error(`${file}: postgres.images must map each supported major to its exact image`);
    }
    const badAirflow = doc.airflow.releases.filter((v) => !isAirflowRelease(v));
    if (badAirflow.length > 0) {
        throw new Error(
            `${file}: airflow.releases ${badAirflow.join(", ")}: the Airflow component renders 2.x and 3.x releases only`,
        );
    }
    return { ...doc, postgres: { ...doc.postgres, releases: Object.keys(images) } };
}

/** The one list of releases each version key accepts (config/versions.yaml). */
export const SUPPORTED_VERSIONS: Readonly<Record<VersionListName, VersionList>> = (() => {
    const file = path.join(CONFIG_DIR, "versions.yaml");
    return checkVersions(file, parse(fs.readFileSync(file, "utf8")));
})();

/** The version keys and the list of config/versions.yaml each is checked against. */
export const VERSION_KEYS = {
    postgresVersion: "postgres",
    redisVersion: "redis",
    airflowVersion: "airflow",
    mlflowVersion: "mlflow",
} as const satisfies Readonly<Record<string, VersionListName>>;

/** A string key's format, and the words the error gives when a value does not match it. */
export interface Pattern {
    readonly pattern: RegExp;
    readonly hint: string;
}

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A Kubernetes label key (optional DNS prefix, then a name) and value. */
export const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
export const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
export const TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"] as const;
/** One field of a cron expression (robfig/cron, which CloudNativePG uses): numbers, names, `*`, `?`, `/`, `,`, `-`. */
export const CRON_FIELD = /^[0-9A-Za-z*?/,-]+$/;
/** RFC 3339 with a zone (Z or an offset), as CloudNativePG's recoveryTarget.targetTime parses it. */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** An OANDA instrument, BASE_QUOTE. */
export const INSTRUMENT = /^[A-Z]{3}_[A-Z]{3}$/;
/** A market holiday (marketHolidays): an ISO date that exists in the calendar, as fx_pipeline.market parses it. */
export const MARKET_HOLIDAY: Pattern = {
    pattern: /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/,
    hint: "each holiday must be an ISO date YYYY-MM-DD that exists, such as 2026-12-25",
};

/** An S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-'), then an optional path of plain segments. */
const S3_DESTINATION = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/[A-Za-z0-9._-]+)*$/;
/** What S3_DESTINATION allows, in words, for the errors of every key that takes it. */
const S3_DESTINATION_FORM =
    "s3://<bucket>[/<path>]: a bucket of 3 to 63 lower-case letters, digits, '.' or '-', then path segments of letters, digits, '.', '_' or '-'";
/** An object store's endpoint: https://host[/path]. */
const HTTPS_ENDPOINT = /^https:\/\/[^\s/]+(\/\S*)?$/;
const HF_REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const CPU = /^([1-9][0-9]*m|[0-9]+(\.[0-9]{1,3})?)$/;
const MEMORY = /^[1-9][0-9]*(Mi|Gi)$/;
const STORAGE = /^[1-9][0-9]*(Mi|Gi|Ti)$/;

/** `re`, or the empty string (the key's "not set" value). */
const orEmpty = (re: RegExp) => new RegExp(`^$|${re.source}`);
const NAMESPACE: Pattern = {
    pattern: DNS_LABEL,
    hint: "must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters",
};
const STORAGE_SIZE: Pattern = { pattern: STORAGE, hint: "must be a storage size in Mi, Gi or Ti, such as 5Gi" };
const HF_ID: Pattern = { pattern: HF_REPO, hint: "must be a Hugging Face id owner/name" };

/** The workloads whose CPU and memory are stack config (`<workload>CpuRequest`, `…CpuLimit`, `…Memory`). */
export const SIZED_WORKLOADS = [
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
export type SizedWorkload = (typeof SIZED_WORKLOADS)[number];

const CPU_QUANTITY: Pattern = { pattern: CPU, hint: "must be a CPU quantity such as 250m or 1.5" };
const MEMORY_QUANTITY: Pattern = { pattern: MEMORY, hint: "must be a memory quantity in Mi or Gi, such as 512Mi" };
const SIZES: Record<string, Pattern> = Object.fromEntries(
    SIZED_WORKLOADS.flatMap((w) => [
        [`${w}CpuRequest`, CPU_QUANTITY],
        [`${w}CpuLimit`, CPU_QUANTITY],
        [`${w}Memory`, MEMORY_QUANTITY],
    ]),
);

/** The string keys with a format. */
export const PATTERNS: Readonly<Record<string, Pattern>> = {
    namespace: NAMESPACE,
    monitoringNamespace: NAMESPACE,
    ingressControllerNamespace: NAMESPACE,
    // host[:port][/path], lower case as registries require; no scheme.
    registryServer: {
        pattern: /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/,
        hint: "must be host[:port][/path] in lower case without a scheme, for example localhost:5001 or ghcr.io/org/fx",
    },
    ...SIZES,
    storageClass: { pattern: orEmpty(DNS_SUBDOMAIN), hint: "must be empty (cluster default) or a StorageClass name" },
    postgresStorage: STORAGE_SIZE,
    redisStorage: STORAGE_SIZE,
    mlflowArtifactStorage: STORAGE_SIZE,
    fingptCacheStorage: STORAGE_SIZE,
    prometheusStorage: STORAGE_SIZE,
    fingptBaseModel: HF_ID,
    fingptAdapter: HF_ID,
    domain: { pattern: DNS_SUBDOMAIN, hint: "must be a lower-case DNS name such as fx-ml.example.com" },
    ingressClass: { pattern: DNS_SUBDOMAIN, hint: "must be an IngressClass name" },
    acmeEmail: { pattern: /^$|^[^@\s]+@[^@\s]+\.[^@\s]+$/, hint: "must be an e-mail address" },
    acmeServer: { pattern: /^https:\/\/\S+$/, hint: "must be an https:// ACME directory URL" },
    prometheusRetention: { pattern: /^[1-9][0-9]*(h|d|w|y)$/, hint: "must be a duration such as 48h or 15d" },
    grafanaAdminUser: { pattern: /^[A-Za-z0-9._-]{1,64}$/, hint: "letters, digits, '.', '_' or '-'" },
    mlflowArtifactDestination: {
        pattern: orEmpty(S3_DESTINATION),
        hint: `must be empty (a PVC) or ${S3_DESTINATION_FORM}`,
    },
    mlflowArtifactEndpoint: {
        pattern: orEmpty(HTTPS_ENDPOINT),
        hint: "must be empty (AWS S3) or the object store's https:// endpoint, such as https://storage.googleapis.com",
    },
    mlflowArtifactCredentialsSecret: {
        pattern: orEmpty(DNS_SUBDOMAIN),
        hint: "must be empty or the name of a Secret in the pipeline namespace",
    },
    backupDestination: {
        pattern: orEmpty(S3_DESTINATION),
        hint: `must be ${S3_DESTINATION_FORM} (Google Cloud Storage and other S3-compatible stores take the s3:// form with their backupEndpoint)`,
    },
    backupEndpoint: {
        pattern: orEmpty(HTTPS_ENDPOINT),
        hint: "must be the object store's https:// endpoint, such as https://s3.eu-west-1.amazonaws.com or https://storage.googleapis.com",
    },
    backupRetention: {
        pattern: /^[1-9][0-9]*[dwm]$/,
        hint: "must be a number followed by d, w or m (days, weeks, months), such as 30d",
    },
    backupServerName: NAMESPACE,
    postgresRecoverFrom: {
        pattern: orEmpty(DNS_LABEL),
        hint: "must be empty or the backupServerName of the cluster whose backups to restore, such as fx-postgres",
    },
};

/**
 * A condition on other keys' validated values: every key named must hold the value given (`{ not: v }`: any other
 * value). A key whose value is invalid matches nothing, so its own problem is the only one reported.
 */
export type When = Readonly<Record<string, string | boolean | { readonly not: string | boolean }>>;

/** Keys that do nothing while `when` holds: set away from their defaults there, each is a problem saying `why`. */
export interface NoEffect {
    readonly keys: readonly string[];
    readonly when: When;
    readonly why: string;
}

const FINGPT_MODEL_ONLY = ["fingptBaseModel", "fingptAdapter", "fingptCacheStorage"];
const GPU_ONLY_IN_MODEL_MODE = "unless FinGPT runs in model mode (the only pod that asks for a GPU)";

/** Where a key has no effect (one problem per key: the first row that holds names it). */
export const NO_EFFECT: readonly NoEffect[] = [
    {
        keys: ["fingptMode", ...FINGPT_MODEL_ONLY, "fingptCpuRequest", "fingptCpuLimit", "fingptMemory"],
        when: { fingptEnabled: false },
        why: "while fingptEnabled is false",
    },
    {
        keys: FINGPT_MODEL_ONLY,
        when: { fingptEnabled: true, fingptMode: "lexicon" },
        why: "in fingptMode lexicon (the CPU scorer loads no model)",
    },
    {
        keys: ["gpuCount", "gpuNodeSelector", "gpuTolerations"],
        when: { gpuEnabled: false },
        why: "while gpuEnabled is false (set gpuEnabled=true on a cluster with a GPU pool)",
    },
    { keys: ["gpuCount"], when: { gpuEnabled: true, fingptEnabled: false }, why: GPU_ONLY_IN_MODEL_MODE },
    { keys: ["gpuCount"], when: { gpuEnabled: true, fingptMode: "lexicon" }, why: GPU_ONLY_IN_MODEL_MODE },
    { keys: ["acmeEmail", "acmeServer"], when: { tlsIssuer: "selfsigned" }, why: "while tlsIssuer is selfsigned" },
    { keys: ["oandaEnvironment"], when: { dataSource: "sample" }, why: "while dataSource is sample" },
    {
        keys: ["airflowWorkerMaxReplicas", "airflowWorkerQueueTarget"],
        when: { airflowWorkerAutoscaling: false },
        why: "while airflowWorkerAutoscaling is false",
    },
    {
        keys: ["mlflowArtifactEndpoint", "mlflowArtifactCredentialsSecret"],
        when: { mlflowArtifactDestination: "" },
        why: "while mlflowArtifactDestination is empty (artifacts on the PVC)",
    },
    {
        keys: ["mlflowArtifactStorage"],
        when: { mlflowArtifactDestination: { not: "" } },
        why: "while mlflowArtifactDestination is set (no artifact PVC)",
    },
    {
        keys: [
            "backupDestination",
            "backupEndpoint",
            "backupSchedule",
            "backupRetention",
            "backupServerName",
            "postgresRecoveryTarget",
        ],
        when: { postgresBackups: false },
        why: "while postgresBackups is false",
    },
];

/** A secret key (config/secrets.yaml), needed while `when` holds. */
export interface SecretUse {
    readonly key: string;
    readonly when: When;
    readonly why: string;
}

/** When each secret is needed: unset there, it is a problem naming the command that sets it. */
export const SECRET_NEEDED: readonly SecretUse[] = [
    { key: "registryPassword", when: { registryUsername: { not: "" } }, why: "when registryUsername is set" },
    {
        key: "oandaToken",
        when: { dataSource: "oanda" },
        why: "when dataSource is oanda (or set dataSource=sample to run on synthetic candles)",
    },
    {
        key: "oandaAccountId",
        when: { dataSource: "oanda" },
        why: "when dataSource is oanda (or set dataSource=sample to run on synthetic candles)",
    },
    // The default base model is gated on Hugging Face: without a token the pod fails at download, not here.
    {
        key: "hfToken",
        when: { fingptEnabled: true, fingptMode: "model" },
        why: "when FinGPT runs in model mode (to download the gated base model)",
    },
    {
        key: "backupAccessKeyId",
        when: { postgresBackups: true },
        why: "when postgresBackups is true (the object store's access key id)",
    },
    {
        key: "backupSecretAccessKey",
        when: { postgresBackups: true },
        why: "when postgresBackups is true (the object store's secret access key)",
    },
];

const HF_TOKEN_UNUSED = "unless FinGPT runs in model mode (fingptEnabled true, fingptMode model)";

/** When each secret does nothing: set there, it is a warning (it may be set ahead of use), its value never shown. */
export const SECRET_UNUSED: readonly SecretUse[] = [
    {
        key: "registryPassword",
        when: { registryUsername: "" },
        why: "without registryUsername (the registry takes no credentials)",
    },
    { key: "hfToken", when: { fingptEnabled: false }, why: HF_TOKEN_UNUSED },
    { key: "hfToken", when: { fingptMode: "lexicon" }, why: HF_TOKEN_UNUSED },
    { key: "oandaToken", when: { dataSource: "sample" }, why: "while dataSource is sample" },
    { key: "oandaAccountId", when: { dataSource: "sample" }, why: "while dataSource is sample" },
    { key: "backupAccessKeyId", when: { postgresBackups: false }, why: "while postgresBackups is false" },
    { key: "backupSecretAccessKey", when: { postgresBackups: false }, why: "while postgresBackups is false" },
];

/** Whether `when` holds for the validated values (`undefined`: unset or invalid, which matches nothing). */
export function holds(when: When, values: Readonly<Record<string, unknown>>): boolean {
    return Object.entries(when).every(([key, want]) => {
        const v = values[key];
        if (v === undefined) return false;
        return typeof want === "object" ? v !== want.not : v === want;
    });
}

/**
 * The label the NVIDIA device plugin chart's node-feature-discovery subchart puts on every node with an NVIDIA PCI
 * device (vendor 10de), on any provider: the GPU pool's default selector when the stack installs the plugin.
 */
export const NFD_NVIDIA_GPU_LABEL = "feature.node.kubernetes.io/pci-10de.present";
