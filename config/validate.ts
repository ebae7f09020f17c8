import * as pulumi from "@pulumi/pulumi";
import { Check, Problem, RawConfig } from "./check";
import { DECLARED, SECRET_KEYS } from "./declared";
import { readAppContext, readCluster, REFERENCE_APP } from "./paths";
import {
    holds,
    isAirflowRelease,
    MARKET_HOLIDAY,
    NO_EFFECT,
    SECRET_NEEDED,
    SECRET_UNUSED,
    SIZED_WORKLOADS,
    SUPPORTED_VERSIONS,
} from "./rules";
import { chartOrigin } from "./charts";
import { readBackup, readMlflowObjectStore } from "./storage";
import { readGpu } from "./gpu";
import type { ResourceSpec } from "../lib/k8s";
import type { SizedWorkload } from "./rules";
import type { StackConfig } from "./types";

export type { Problem, RawConfig, Rule } from "./check";

/**
 * `validate(raw)`: the stack config the engine holds, checked against config/rules.ts, with no Pulumi runtime
 * involved. It answers with the typed, frozen config, or every problem at once (each naming the key, the bad value and
 * what is allowed), and the warnings (secrets set where they do nothing). The only things it reads besides `raw` are
 * the files keys name (kubeconfig, appContext, a chart folder), so a bad path is refused before anything is created.
 */

/**
 * Raised when stack config is invalid; `problems` holds one line per bad key. The stack's name is `stackName`, not
 * `stack`: that would replace Error.stack, which is what the Pulumi CLI prints when a program fails.
 */
export class ConfigValidationError extends Error {
    readonly problems: readonly string[];
    constructor(
        readonly stackName: string,
        problems: readonly Problem[],
    ) {
        const lines = problems.map((p) => p.message);
        super(
            `Invalid configuration for stack '${stackName}' (${lines.length} problem${lines.length === 1 ? "" : "s"}):\n` +
                lines.map((p) => `  - ${p}`).join("\n"),
        );
        this.problems = lines;
        this.name = "ConfigValidationError";
    }
}

export interface Validated {
    /** Undefined when there is a problem. */
    readonly config?: StackConfig;
    readonly problems: readonly Problem[];
    readonly warnings: readonly string[];
}

/** CPU quantity in millicores ("250m" -> 250, "1.5" -> 1500). */
export function cpuMillis(q: string): number {
    return q.endsWith("m") ? Number(q.slice(0, -1)) : Math.round(Number(q) * 1000);
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
 * Every key in the project's namespace must be declared (Pulumi.yaml) or a known secret (config/secrets.yaml); a
 * `kubernetes:` key would configure the default Kubernetes provider, which this program never uses.
 */
function unknownKeys(c: Check): void {
    const known = [...Object.keys(DECLARED), ...Object.keys(SECRET_KEYS)];
    const prefix = `${c.raw.project}:`;
    for (const [full, raw] of Object.entries(c.raw.values)) {
        const shown = c.raw.secrets.includes(full) ? "<secret>" : raw;
        const problem = (allowed: string) =>
            c.problems.push({
                key: full,
                value: shown,
                rule: "unknown-key",
                message: `Configuration '${full}' value ${JSON.stringify(shown)} is invalid: ${allowed}.`,
            });
        if (full.startsWith(prefix)) {
            const key = full.slice(prefix.length);
            if (known.includes(key)) continue;
            problem(
                `'${key}' is not a key of this project (declared in Pulumi.yaml, secrets in config/secrets.yaml); the nearest is '${nearestKey(key, known)}'`,
            );
        } else if (full.startsWith("kubernetes:")) {
            problem(
                `it configures the default Kubernetes provider, which this program never uses; name the cluster with ${prefix}kubeContext (and ${prefix}kubeconfig)`,
            );
        }
    }
}

/** The releases of each component; the reference app (appContext `app`) supports one major of Airflow and MLflow. */
function readVersions(c: Check, appContext: string | undefined) {
    const postgres = c.release("postgresVersion", "a Postgres major with a CloudNativePG image");
    const redis = c.release("redisVersion", "a tag of the official redis image");
    // Every listed Airflow release is 2.x or 3.x (config/rules.ts checks the file as it loads).
    const airflowRelease = c.release("airflowVersion", "an Apache Airflow release");
    const airflow = airflowRelease && isAirflowRelease(airflowRelease) ? airflowRelease : undefined;
    const mlflow = c.release("mlflowVersion", "an MLflow release");
    // The reference app is written for Airflow 3 (airflow.sdk, DeadlineAlert) and ships MLflow 3 clients; the seed's
    // 2.x releases stay selectable for a pipeline checkout of your own that targets them.
    if (appContext === REFERENCE_APP) {
        const major = (v: string) => Number(v.split(".")[0]);
        const airflowMajor = SUPPORTED_VERSIONS.airflow.referenceAppMajor;
        if (airflow && major(airflow) !== airflowMajor) {
            c.fail(
                "airflowVersion",
                airflow,
                `the reference app's DAGs need Airflow ${airflowMajor}.x; Airflow ${major(airflow)}.x needs appContext pointing at a pipeline checkout written for it`,
            );
        }
        const mlflowMajor = SUPPORTED_VERSIONS.mlflow.referenceAppMajor;
        if (mlflow && major(mlflow) !== mlflowMajor) {
            c.fail(
                "mlflowVersion",
                mlflow,
                `the reference app logs models with MLflow ${mlflowMajor} clients; an MLflow ${major(mlflow)}.x server needs appContext pointing at a pipeline checkout with MLflow ${major(mlflow)} clients`,
            );
        }
    }
    if (!postgres || !redis || !airflow || !mlflow) return undefined;
    return { postgres, redis, airflow, mlflow };
}

/** Replicas, workers and the Celery workers' autoscaling. */
function readReplicas(c: Check): StackConfig["replicas"] | undefined {
    const fastapi = c.int("fastapiReplicas");
    const fastapiMax = c.int("fastapiMaxReplicas");
    const fastapiWorkers = c.int("fastapiWorkers");
    c.atLeastFloor("fastapiMaxReplicas", fastapiMax, fastapi);
    const airflowWebserver = c.int("airflowWebserverReplicas");
    const airflowApiWorkers = c.int("airflowApiWorkers");
    const airflowWorker = c.int("airflowWorkerReplicas");
    const workerMax = c.int("airflowWorkerMaxReplicas");
    const queueTarget = c.int("airflowWorkerQueueTarget");
    const autoscaling = c.bool("airflowWorkerAutoscaling");
    if (autoscaling) c.atLeastFloor("airflowWorkerMaxReplicas", workerMax, airflowWorker, ", the floor");
    if (!fastapi || !fastapiMax || !fastapiWorkers || !airflowWebserver || !airflowApiWorkers || !airflowWorker) {
        return undefined;
    }
    if (autoscaling === undefined || (autoscaling && (!workerMax || !queueTarget))) return undefined;
    return {
        fastapi,
        fastapiMax,
        fastapiWorkers,
        airflowWorker,
        airflowWebserver,
        airflowApiWorkers,
        airflowWorkerAutoscaling: autoscaling ? { max: workerMax!, queueTarget: queueTarget! } : undefined,
    };
}

/** CPU request and limit and memory of each sized workload; a limit below its request is refused. */
function readResources(c: Check): Record<SizedWorkload, ResourceSpec> {
    const resources = {} as Record<SizedWorkload, ResourceSpec>;
    for (const w of SIZED_WORKLOADS) {
        const cpuRequest = c.str(`${w}CpuRequest`);
        const cpuLimit = c.str(`${w}CpuLimit`);
        const memory = c.str(`${w}Memory`);
        if (cpuRequest && cpuLimit && cpuMillis(cpuLimit) < cpuMillis(cpuRequest)) {
            c.fail(`${w}CpuLimit`, cpuLimit, `must be at least ${w}CpuRequest (${cpuRequest})`);
        }
        resources[w] = { cpuRequest: cpuRequest ?? "", cpuLimit: cpuLimit ?? "", memory: memory ?? "" };
    }
    return resources;
}

/** Domain, ingress and TLS. */
function readEdge(c: Check): StackConfig["edge"] | undefined {
    const domain = c.str("domain");
    const ingressClass = c.str("ingressClass");
    const ingressControllerNamespace = c.str("ingressControllerNamespace");
    const installCertManager = c.bool("installCertManager");
    const tlsIssuer = c.oneOf("tlsIssuer");
    const acmeEmail = c.str("acmeEmail") || undefined;
    const acmeServer = c.str("acmeServer");
    if (tlsIssuer === "acme" && !acmeEmail && !c.failed("acmeEmail")) {
        c.fail("acmeEmail", "", "required when tlsIssuer is acme", "required");
    }
    if (!domain || !ingressClass || !ingressControllerNamespace || installCertManager === undefined) return undefined;
    if (!tlsIssuer || !acmeServer) return undefined;
    return { domain, ingressClass, ingressControllerNamespace, installCertManager, tlsIssuer, acmeEmail, acmeServer };
}

/** Whether YYYY-MM-DD (already of that form) names a day that exists: not 2026-02-30. */
function calendarDate(d: string): boolean {
    const [y, m, day] = d.split("-").map(Number);
    const t = new Date(Date.UTC(y, m - 1, day));
    return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === day;
}

/** The candles' source, its credentials, the instruments and the market's holidays. */
function readData(c: Check): StackConfig["data"] | undefined {
    const source = c.oneOf("dataSource");
    const oandaEnvironment = c.oneOf("oandaEnvironment");
    const instruments = c.strings("instruments");
    if (instruments) {
        if (instruments.length === 0) c.fail("instruments", instruments, "must name at least one instrument");
        for (const i of instruments) {
            if (!/^[A-Z]{3}_[A-Z]{3}$/.test(i)) {
                c.fail("instruments", i, "each instrument must be BASE_QUOTE, such as USD_SGD");
            }
        }
    }
    const marketHolidays = c.strings("marketHolidays");
    for (const d of marketHolidays ?? []) {
        if (!MARKET_HOLIDAY.pattern.test(d) || !calendarDate(d)) c.fail("marketHolidays", d, MARKET_HOLIDAY.hint);
    }
    if (!source || !oandaEnvironment || !instruments || !marketHolidays) return undefined;
    const token = c.secret("oandaToken");
    const accountId = c.secret("oandaAccountId");
    return {
        source,
        oandaEnvironment,
        oandaToken: source === "oanda" && token ? pulumi.secret(token) : undefined,
        oandaAccountId: source === "oanda" && accountId ? pulumi.secret(accountId) : undefined,
        instruments,
        marketHolidays,
    };
}

/** The "no effect unless" and secret tables of config/rules.ts, over the values every section read. */
function applyConditions(c: Check): void {
    for (const rule of NO_EFFECT) {
        if (holds(rule.when, c.seen)) for (const key of rule.keys) c.noEffect(key, rule.why);
    }
    for (const use of SECRET_NEEDED) if (holds(use.when, c.seen)) c.needSecret(use.key, use.why);
    for (const use of SECRET_UNUSED) if (holds(use.when, c.seen)) c.unusedSecret(use.key, use.why);
}

function deepFreeze<T>(o: T): T {
    if (o && typeof o === "object" && !pulumi.Output.isInstance(o) && !Object.isFrozen(o)) {
        Object.freeze(o);
        for (const v of Object.values(o as object)) deepFreeze(v);
    }
    return o;
}

/** Validates a stack's config: the typed config, or every problem; see the top of this file. */
export function validate(raw: RawConfig): Validated {
    const c = new Check(raw);
    unknownKeys(c);
    const cluster = readCluster(c);

    const namespace = c.str("namespace");
    const monitoringNamespace = c.str("monitoringNamespace");
    if (namespace && namespace === monitoringNamespace) {
        c.fail("monitoringNamespace", monitoringNamespace, "must differ from namespace");
    }

    const server = c.str("registryServer");
    const username = c.str("registryUsername");
    const registryPassword = c.secret("registryPassword");
    const appContext = readAppContext(c);
    const imagePlatform = c.oneOf("imagePlatform");
    const replicas = readReplicas(c);
    const resources = readResources(c);
    const versions = readVersions(c, appContext);

    const fingptEnabled = c.bool("fingptEnabled");
    const fingptMode = c.oneOf("fingptMode");
    const baseModel = c.str("fingptBaseModel");
    const adapter = c.str("fingptAdapter");
    const fingptModel = fingptEnabled === true && fingptMode === "model";
    const hfToken = c.secret("hfToken");
    const gpu = readGpu(c, fingptModel);

    const edge = readEdge(c);
    const data = readData(c);

    const storage = {
        storageClass: c.str("storageClass") || undefined,
        mlflowObjectStore: readMlflowObjectStore(c),
        postgres: c.str("postgresStorage") ?? "",
        redis: c.str("redisStorage") ?? "",
        mlflowArtifacts: c.str("mlflowArtifactStorage") ?? "",
        fingptCache: c.str("fingptCacheStorage") ?? "",
        prometheus: c.str("prometheusStorage") ?? "",
        retainOnDelete: c.bool("retainDataOnDelete") ?? true,
    };
    const backupsOn = c.bool("postgresBackups");
    const backup = readBackup(c, backupsOn);
    const charts = chartOrigin(c, {
        gpu: c.seen.installDevicePlugin === true,
        certManager: c.seen.installCertManager === true,
        backups: backupsOn === true,
        keda: c.seen.airflowWorkerAutoscaling === true,
    });
    const prometheusRetention = c.str("prometheusRetention");
    const postgresInstances = c.int("postgresInstances");
    const grafanaAdminUser = c.str("grafanaAdminUser");

    applyConditions(c);
    const { problems, warnings } = c;
    if (problems.length > 0) return { problems, warnings };

    // Every value below passed validation: a section answers undefined only with a problem reported.
    const config: StackConfig = {
        project: raw.project,
        stack: raw.stack,
        cluster: cluster!,
        namespace: namespace!,
        monitoringNamespace: monitoringNamespace!,
        registry: {
            server: server!,
            username: username || undefined,
            password: username && registryPassword ? pulumi.secret(registryPassword) : undefined,
        },
        appContext: appContext!,
        charts: charts!,
        imagePlatform: imagePlatform!,
        replicas: replicas!,
        resources,
        storage,
        prometheusRetention: prometheusRetention!,
        postgresInstances: postgresInstances!,
        backup: backup?.config,
        backupCredentials: backup?.credentials,
        versions: versions!,
        fingpt: {
            enabled: fingptEnabled!,
            mode: fingptMode!,
            baseModel: baseModel!,
            adapter: adapter!,
            hfToken: fingptModel && hfToken ? pulumi.secret(hfToken) : undefined,
        },
        gpu: gpu!,
        edge: edge!,
        data: data!,
        grafanaAdminUser: grafanaAdminUser!,
    };
    return { config: deepFreeze(config), problems, warnings };
}
