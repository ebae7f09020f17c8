import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { chartArchiveName, CHARTS } from "../lib/charts";
import { DECLARED } from "../config/declared";
import { descriptionProblems } from "../config/descriptions";
import { checkVersions, isAirflowRelease, RANGES, SUPPORTED_VERSIONS, VERSION_KEYS } from "../config/rules";
import * as pulumi from "@pulumi/pulumi";
import { Problem, Rule, validate } from "../config/validate";
import { rawConfig, runStack, RunOptions, StackName } from "../tools/harness";
import { SHARED_DATA } from "../tools/stacks";

/** Runs a stack expected to fail; returns the error message and what was declared before the failure. */
async function failure(stack: StackName, options: RunOptions): Promise<{ message: string; registered: unknown[] }> {
    try {
        await runStack(stack, options);
    } catch (e) {
        return { message: (e as Error).message, registered: (e as { registered?: unknown[] }).registered ?? [] };
    }
    throw new Error("expected the stack to fail validation");
}

// Each row: stack, config overrides (or unset secrets), and the words its error must contain (key, value, allowed).
/** A folder with every pinned archive but Grafana's, to show the one a stack lacks is named. */
const PARTIAL_CHARTS = (() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-charts-"));
    for (const ref of Object.values(CHARTS)) {
        if (ref.chart !== "grafana") fs.writeFileSync(path.join(dir, chartArchiveName(ref)), "");
    }
    return dir;
})();

/** A copy of the reference app without its .dockerignore. */
const NO_DOCKERIGNORE = (() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-context-"));
    fs.writeFileSync(path.join(dir, "README.md"), "a build context without a .dockerignore\n");
    return dir;
})();

const BAD: [string, StackName, RunOptions, string[]][] = [
    [
        "chart repository with an unsupported scheme",
        "dev",
        { config: { chartRepository: "ftp://charts.internal/fx" } },
        ["fx-ml-pipeline:chartRepository", "ftp://charts.internal/fx", "https:// or oci://", "folder"],
    ],
    [
        "chart folder that does not exist",
        "dev",
        { config: { chartRepository: "/no/such/charts" } },
        ["fx-ml-pipeline:chartRepository", "/no/such/charts", "does not exist"],
    ],
    [
        "chart folder without a pinned archive",
        "gpu",
        { config: { chartRepository: PARTIAL_CHARTS } },
        ["fx-ml-pipeline:chartRepository", "lacks the pinned chart archives grafana-12.11.1.tgz"],
    ],
    [
        "namespace not a DNS label",
        "dev",
        { config: { namespace: "FX_ML" } },
        ["fx-ml-pipeline:namespace", '"FX_ML"', "DNS-1123"],
    ],
    [
        "replicas not a number",
        "dev",
        { config: { fastapiReplicas: "two" } },
        ["fx-ml-pipeline:fastapiReplicas", "number"],
    ],
    ["replicas out of range", "dev", { config: { fastapiReplicas: 0 } }, ["fx-ml-pipeline:fastapiReplicas", "0", "1"]],
    ["FastAPI workers out of range", "gpu", { config: { fastapiWorkers: 0 } }, ["fastapiWorkers", "0", "1"]],
    ["API workers out of range", "dev", { config: { airflowApiWorkers: 9 } }, ["airflowApiWorkers", "9", "8"]],
    [
        "replicas not whole",
        "dev",
        { config: { airflowWorkerReplicas: 1.5 } },
        ["airflowWorkerReplicas", "1.5", "whole number"],
    ],
    [
        "max replicas below min",
        "gpu",
        { config: { fastapiReplicas: 4, fastapiMaxReplicas: 3 } },
        ["fastapiMaxReplicas", "3", "at least fastapiReplicas (4)"],
    ],
    ["gpu count out of range", "gpu", { config: { gpuCount: 9 } }, ["fx-ml-pipeline:gpuCount", "9", "8"]],
    // Rules the components checked again on their own until #15 (fingpt, postgres, fastapi, redis, airflow, images).
    ["no GPU for FinGPT's model", "gpu", { config: { gpuCount: 0 } }, ["fx-ml-pipeline:gpuCount", "0", "1"]],
    [
        "no Postgres instance",
        "gpu",
        { config: { postgresInstances: 0 } },
        ["fx-ml-pipeline:postgresInstances", "0", "1"],
    ],
    [
        "more Postgres instances than allowed",
        "dev",
        { config: { postgresInstances: 6 } },
        ["postgresInstances", "6", "5"],
    ],
    [
        "FastAPI ceiling above the range",
        "dev",
        { config: { fastapiMaxReplicas: 51 } },
        ["fx-ml-pipeline:fastapiMaxReplicas", "51", "50"],
    ],
    [
        "Postgres minor release instead of a major",
        "gpu",
        { config: { postgresVersion: "17.2" } },
        ["fx-ml-pipeline:postgresVersion", '"17.2"', "14, 15, 16, 17, 18"],
    ],
    [
        "Airflow major the components do not render",
        "dev",
        { config: { airflowVersion: "4.0.0", appContext: "test/fixtures/own-pipeline" } },
        ["fx-ml-pipeline:airflowVersion", '"4.0.0"', "Apache Airflow release listed in config/versions.yaml", "2.7.0"],
    ],
    [
        "Redis 8 tag",
        "gpu",
        { config: { redisVersion: "8.2.1" } },
        ["fx-ml-pipeline:redisVersion", '"8.2.1"', "7.2.0", "7.4.8"],
    ],
    [
        "build context that does not exist",
        "dev",
        { config: { appContext: "no-such-dir" } },
        ["fx-ml-pipeline:appContext", '"no-such-dir"', "application checkout", "is not a folder"],
    ],
    [
        "build context without a .dockerignore",
        "dev",
        { config: { appContext: NO_DOCKERIGNORE } },
        ["fx-ml-pipeline:appContext", NO_DOCKERIGNORE, "needs a .dockerignore"],
    ],
    [
        "unknown tls issuer",
        "gpu",
        { config: { tlsIssuer: "vault" } },
        ["fx-ml-pipeline:tlsIssuer", "vault", "selfsigned", "acme"],
    ],
    [
        "ingress controller namespace not a DNS label",
        "dev",
        { config: { ingressControllerNamespace: "Traefik_System" } },
        ["fx-ml-pipeline:ingressControllerNamespace", "Traefik_System", "DNS-1123"],
    ],
    [
        "unknown data source",
        "dev",
        { config: { dataSource: "csv" } },
        ["fx-ml-pipeline:dataSource", "csv", "oanda", "sample"],
    ],
    ["boolean as word", "dev", { config: { gpuEnabled: "yes" } }, ["fx-ml-pipeline:gpuEnabled", "boolean"]],
    [
        "gpu stack with GPUs disabled but FinGPT enabled",
        "gpu",
        { config: { gpuEnabled: false, installDevicePlugin: false } },
        ["fingptEnabled", "needs a GPU pool", "fingptMode=lexicon"],
    ],
    [
        "device plugin without GPUs",
        "dev",
        { config: { installDevicePlugin: true } },
        ["installDevicePlugin", "gpuEnabled=true"],
    ],
    [
        "GPUs with no pool selector",
        "gpu",
        // Without the device plugin nothing labels the pool for us (with it, node-feature-discovery does).
        { config: { gpuNodeSelector: [], gpuTolerations: [], installDevicePlugin: false } },
        ["gpuNodeSelector", "GPU pool"],
    ],
    [
        "malformed registry",
        "gpu",
        { config: { registryServer: "https://Ghcr.io/org" } },
        ["fx-ml-pipeline:registryServer", "https://Ghcr.io/org", "host[:port][/path]"],
    ],
    [
        "registry user without password",
        "gpu",
        { unsetSecrets: ["registryPassword"] },
        ["registryPassword", "required when registryUsername is set"],
    ],
    [
        "missing OANDA token without sample mode",
        "gpu",
        { unsetSecrets: ["oandaToken"] },
        ["oandaToken", "required when dataSource is oanda", "dataSource=sample"],
    ],
    [
        "malformed CPU quantity",
        "dev",
        { config: { fastapiCpuRequest: "fast" } },
        ["fastapiCpuRequest", '"fast"', "CPU quantity"],
    ],
    [
        "CPU limit below request",
        "dev",
        { config: { mlflowCpuRequest: "2", mlflowCpuLimit: "500m" } },
        ["mlflowCpuLimit", "500m", "at least mlflowCpuRequest (2)"],
    ],
    ["malformed memory", "dev", { config: { fastapiMemory: "1GB" } }, ["fastapiMemory", "1GB", "Mi or Gi"]],
    [
        "malformed storage size",
        "gpu",
        { config: { postgresStorage: "lots" } },
        ["postgresStorage", "lots", "storage size"],
    ],
    [
        "unsupported Postgres major",
        "dev",
        { config: { postgresVersion: "12" } },
        ["postgresVersion", '"12"', "CloudNativePG", "14, 15, 16, 17, 18"],
    ],
    [
        "Redis not 7.2/7.4",
        "dev",
        { config: { redisVersion: "8.2.0" } },
        ["redisVersion", '"8.2.0"', "official redis image listed in config/versions.yaml", "7.4.6"],
    ],
    [
        "Redis release that does not exist",
        "gpu",
        { config: { redisVersion: "7.4.99" } },
        ["redisVersion", '"7.4.99"', "config/versions.yaml", "7.2.11", "7.4.8"],
    ],
    [
        "Airflow release that does not exist",
        "dev",
        { config: { airflowVersion: "3.99.0" } },
        ["fx-ml-pipeline:airflowVersion", '"3.99.0"', "Apache Airflow release listed in config/versions.yaml", "3.3.2"],
    ],
    [
        "Airflow release that was yanked from PyPI",
        "gpu",
        { config: { airflowVersion: "3.0.5" } },
        ["airflowVersion", '"3.0.5"', "3.0.4, 3.0.6"],
    ],
    [
        "Airflow older than supported",
        "dev",
        { config: { airflowVersion: "2.6.3" } },
        ["airflowVersion", '"2.6.3"', "2.7.0, 2.7.1"],
    ],
    [
        "MLflow release that does not exist",
        "gpu",
        { config: { mlflowVersion: "3.99.0" } },
        ["fx-ml-pipeline:mlflowVersion", '"3.99.0"', "MLflow release listed in config/versions.yaml", "3.17.2"],
    ],
    [
        "seed's Airflow 2.7.0 with the reference app",
        "dev",
        { config: { airflowVersion: "2.7.0" } },
        ["airflowVersion", "2.7.0", "need Airflow 3.x", "appContext"],
    ],
    [
        "seed's MLflow 2.9.2 with the reference app",
        "gpu",
        { config: { mlflowVersion: "2.9.2" } },
        ["mlflowVersion", "2.9.2", "MLflow 3 clients", "appContext"],
    ],
    [
        "MLflow not a release number",
        "dev",
        { config: { mlflowVersion: "latest" } },
        ["mlflowVersion", '"latest"', "MLflow release listed in config/versions.yaml"],
    ],
    // Keys the project does not know, and keys that do nothing on the stack.
    [
        "misspelt key",
        "dev",
        { config: { fastapiReplica: 3 } },
        [
            "'fx-ml-pipeline:fastapiReplica' value \"3\"",
            "not a key of this project",
            "the nearest is 'fastapiReplicas'",
        ],
    ],
    [
        "key in the wrong case",
        "gpu",
        { config: { GpuCount: 2 } },
        ["'fx-ml-pipeline:GpuCount'", "the nearest is 'gpuCount'"],
    ],
    [
        "misspelt secret: its value is not shown",
        "gpu",
        { config: { oandaTokn: "s3cr3t-value" }, secretConfig: ["oandaTokn"] },
        ["'fx-ml-pipeline:oandaTokn' value \"<secret>\"", "the nearest is 'oandaToken'"],
    ],
    [
        "GPU count on a stack without GPUs",
        "dev",
        { config: { gpuCount: 3 } },
        ["'fx-ml-pipeline:gpuCount' value 3", "has no effect while gpuEnabled is false", "pulumi config rm gpuCount"],
    ],
    [
        "GPU node selector on a stack without GPUs",
        "dev",
        { config: { gpuNodeSelector: ["nvidia.com/gpu.present=true"] } },
        ["gpuNodeSelector", "nvidia.com/gpu.present=true", "has no effect while gpuEnabled is false"],
    ],
    [
        "GPU count with GPUs but no FinGPT model",
        "gpu",
        { config: { fingptMode: "lexicon", gpuCount: 2 } },
        ["gpuCount", "2", "no effect unless FinGPT runs in model mode"],
    ],
    [
        "FinGPT model while FinGPT is off",
        "dev",
        { config: { fingptBaseModel: "mistralai/Mistral-7B-v0.1" } },
        ["fingptBaseModel", "mistralai/Mistral-7B-v0.1", "has no effect while fingptEnabled is false"],
    ],
    [
        "FinGPT model in lexicon mode",
        "dev",
        { config: { fingptEnabled: true, fingptMode: "lexicon", fingptAdapter: "x/y" } },
        ["fingptAdapter", "x/y", "no effect in fingptMode lexicon"],
    ],
    [
        "ACME settings with the self-signed issuer",
        "dev",
        { config: { acmeEmail: "ops@example.com" } },
        ["acmeEmail", "ops@example.com", "has no effect while tlsIssuer is selfsigned"],
    ],
    [
        "OANDA environment on sample data",
        "dev",
        { config: { oandaEnvironment: "live" } },
        ["oandaEnvironment", "live", "has no effect while dataSource is sample"],
    ],
    [
        "gpu stack without the Hugging Face token its model needs",
        "gpu",
        { unsetSecrets: ["hfToken"] },
        [
            "fx-ml-pipeline:hfToken",
            "required when FinGPT runs in model mode",
            "pulumi config set --secret hfToken <value> --stack gpu",
        ],
    ],
    [
        "toleration without effect",
        "gpu",
        { config: { gpuTolerations: ["nvidia.com/gpu"] } },
        ["gpuTolerations", "nvidia.com/gpu", "key[=value]:Effect"],
    ],
    [
        "node selector without value",
        "gpu",
        { config: { gpuNodeSelector: ["gpu"] } },
        ["gpuNodeSelector", "gpu", "key=value"],
    ],
    [
        "ACME issuer without e-mail",
        "gpu",
        { config: { acmeEmail: "" } },
        ["acmeEmail", "required when tlsIssuer is acme"],
    ],
    [
        "instrument not BASE_QUOTE",
        "dev",
        { config: { instruments: ["usdsgd"] } },
        ["instruments", "usdsgd", "BASE_QUOTE"],
    ],
    [
        "market holiday not an ISO date",
        "dev",
        { config: { marketHolidays: ["2026-12-25", "25/12/2026"] } },
        ["marketHolidays", "25/12/2026", "each holiday must be an ISO date YYYY-MM-DD that exists"],
    ],
    [
        "market holiday that does not exist",
        "dev",
        { config: { marketHolidays: ["2026-02-30"] } },
        ["marketHolidays", "2026-02-30", "each holiday must be an ISO date YYYY-MM-DD that exists"],
    ],
    [
        "unknown platform",
        "dev",
        { config: { imagePlatform: "windows/amd64" } },
        ["imagePlatform", "windows/amd64", "linux/amd64"],
    ],
    ["bad retention", "dev", { config: { prometheusRetention: "forever" } }, ["prometheusRetention", "forever", "15d"]],
    // --- Postgres backups and recovery ------------------------------------------------------------------------
    [
        "backups without a destination",
        "gpu",
        { config: { backupDestination: "" } },
        ["fx-ml-pipeline:backupDestination", "required when postgresBackups is true", "s3://<bucket>"],
    ],
    [
        "backup destination of another scheme",
        "gpu",
        { config: { backupDestination: "gs://fx-backups/gpu" } },
        ["backupDestination", '"gs://fx-backups/gpu"', "s3://<bucket>[/<path>]", "Google Cloud Storage"],
    ],
    [
        "backup bucket with upper case",
        "gpu",
        { config: { backupDestination: "s3://FX_Backups" } },
        ["backupDestination", '"s3://FX_Backups"', "3 to 63 lower-case"],
    ],
    [
        "backups without an endpoint",
        "gpu",
        { config: { backupEndpoint: "" } },
        ["backupEndpoint", "required when postgresBackups is true", "https://s3.eu-west-1.amazonaws.com"],
    ],
    [
        "backup endpoint over plain http",
        "gpu",
        { config: { backupEndpoint: "http://minio.local:9000" } },
        ["backupEndpoint", '"http://minio.local:9000"', "https://"],
    ],
    [
        "five-field backup schedule",
        "gpu",
        { config: { backupSchedule: "0 2 * * *" } },
        ["backupSchedule", '"0 2 * * *"', "six-field", "lacks the seconds"],
    ],
    [
        "backup retention in hours",
        "gpu",
        { config: { backupRetention: "48h" } },
        ["backupRetention", '"48h"', "d, w or m"],
    ],
    [
        "backup server name not a DNS label",
        "gpu",
        { config: { backupServerName: "FX Postgres" } },
        ["backupServerName", '"FX Postgres"', "DNS-1123"],
    ],
    [
        "backups without their credentials",
        "gpu",
        { unsetSecrets: ["backupAccessKeyId"] },
        [
            "fx-ml-pipeline:backupAccessKeyId",
            "required when postgresBackups is true",
            "pulumi config set --secret backupAccessKeyId <value> --stack gpu",
        ],
    ],
    [
        "recovery into the folder it restores from",
        "gpu",
        { config: { postgresRecoverFrom: "fx-postgres" } },
        ["postgresRecoverFrom", '"fx-postgres"', "must differ from backupServerName (fx-postgres)", "fx-postgres-2"],
    ],
    [
        "recovery target without a zone",
        "gpu",
        {
            config: {
                postgresRecoverFrom: "fx-postgres",
                backupServerName: "fx-postgres-2",
                postgresRecoveryTarget: "2026-11-30 14:05",
            },
        },
        ["postgresRecoveryTarget", '"2026-11-30 14:05"', "RFC 3339", "2026-11-30T14:05:00Z"],
    ],
    [
        "recovery target without backups to replay",
        "gpu",
        { config: { postgresRecoveryTarget: "2026-11-30T14:05:00Z" } },
        ["postgresRecoveryTarget", "needs postgresRecoverFrom"],
    ],
    [
        "recovery on a stack without backups",
        "dev",
        { config: { postgresRecoverFrom: "fx-postgres" } },
        ["postgresRecoverFrom", "set postgresBackups=true"],
    ],
    [
        "MLflow artifact destination not s3://",
        "dev",
        { config: { mlflowArtifactDestination: "/mnt/artifacts" } },
        ["mlflowArtifactDestination", '"/mnt/artifacts"', "s3://<bucket>[/<path>]"],
    ],
    [
        "MLflow artifact endpoint without https",
        "gpu",
        { config: { mlflowArtifactDestination: "s3://fx-mlflow", mlflowArtifactEndpoint: "minio:9000" } },
        ["mlflowArtifactEndpoint", '"minio:9000"', "https://"],
    ],
    [
        "MLflow artifact credentials Secret not a Secret name",
        "gpu",
        { config: { mlflowArtifactDestination: "s3://fx-mlflow", mlflowArtifactCredentialsSecret: "S3 Keys" } },
        ["mlflowArtifactCredentialsSecret", '"S3 Keys"', "name of a Secret"],
    ],
    [
        "MLflow artifact settings without a destination",
        "dev",
        { config: { mlflowArtifactCredentialsSecret: "mlflow-s3" } },
        ["mlflowArtifactCredentialsSecret", "has no effect while mlflowArtifactDestination is empty"],
    ],
    [
        "an artifact PVC size where artifacts go to object storage",
        "gpu",
        { config: { mlflowArtifactDestination: "s3://fx-mlflow", mlflowArtifactStorage: "20Gi" } },
        ["mlflowArtifactStorage", "has no effect while mlflowArtifactDestination is set"],
    ],
    [
        "backup settings where backups are off",
        "dev",
        { config: { backupDestination: "s3://fx-backups", backupSchedule: "0 0 3 * * *" } },
        ["backupDestination", "backupSchedule", "has no effect while postgresBackups is false"],
    ],
];

/** The problems `validate` finds in a stack's config with these options (the config must be refused). */
function problemsOf(stack: StackName, options: RunOptions): Problem[] {
    const { config, problems } = validate(rawConfig(stack, options));
    expect(problems).not.toEqual([]);
    expect(config).toBeUndefined();
    return [...problems];
}

/** `key` and `rule` of each problem, in order. */
const keysAndRules = (problems: readonly Problem[]) => problems.map(({ key, rule }) => ({ key, rule }));

describe("validate: each bad value is refused with the key, the value and what is allowed", () => {
    test.each(BAD)("%s", (_name, stack, options, words) => {
        const message = problemsOf(stack, options)
            .map((p) => p.message)
            .join("\n");
        for (const w of words) expect(message).toContain(w);
    });

    test.each<[string, StackName, RunOptions, { key: string; rule: Rule }[]]>([
        [
            "an unknown key",
            "dev",
            { config: { fastapiReplica: 2 } },
            [{ key: "fx-ml-pipeline:fastapiReplica", rule: "unknown-key" }],
        ],
        [
            "a default provider key",
            "dev",
            { config: { "kubernetes:context": "x" } },
            [{ key: "kubernetes:context", rule: "unknown-key" }],
        ],
        ["no cluster", "dev", { config: { kubeContext: undefined } }, [{ key: "kubeContext", rule: "required" }]],
        [
            "a word for a number",
            "dev",
            { config: { fastapiReplicas: "two" } },
            [{ key: "fastapiReplicas", rule: "type" }],
        ],
        ["a number out of range", "gpu", { config: { gpuCount: 9 } }, [{ key: "gpuCount", rule: "range" }]],
        [
            "a ceiling below its floor",
            "gpu",
            { config: { fastapiReplicas: 4, fastapiMaxReplicas: 3 } },
            [{ key: "fastapiMaxReplicas", rule: "floor" }],
        ],
        ["a word not allowed", "dev", { config: { tlsIssuer: "vault" } }, [{ key: "tlsIssuer", rule: "choice" }]],
        ["a malformed name", "dev", { config: { namespace: "FX_ML" } }, [{ key: "namespace", rule: "pattern" }]],
        [
            "an unlisted release",
            "gpu",
            { config: { redisVersion: "8.2.1" } },
            [{ key: "redisVersion", rule: "release" }],
        ],
        [
            "settings where they do nothing",
            "dev",
            { config: { gpuCount: 2, acmeEmail: "ops@example.com" } },
            [
                { key: "gpuCount", rule: "no-effect" },
                { key: "acmeEmail", rule: "no-effect" },
            ],
        ],
        [
            "secrets a stack needs",
            "gpu",
            { unsetSecrets: ["oandaToken", "hfToken"] },
            [
                { key: "oandaToken", rule: "secret-needed" },
                { key: "hfToken", rule: "secret-needed" },
            ],
        ],
        [
            "an invalid key is not also reported as one with no effect",
            "dev",
            { config: { gpuCount: 0 } },
            [{ key: "gpuCount", rule: "range" }],
        ],
    ])("%s", (_name, stack, options, expected) => {
        expect(keysAndRules(problemsOf(stack, options))).toEqual(expected);
    });

    test("a valid stack gives the typed config, and the secrets only wrapped", async () => {
        const { config, problems } = validate(rawConfig("gpu", { config: { airflowWorkerAutoscaling: true } }));
        expect(problems).toEqual([]);
        expect(config?.replicas).toEqual({
            fastapi: 2,
            fastapiMax: 6,
            fastapiWorkers: 2,
            airflowWorker: 1,
            airflowWebserver: 1,
            airflowApiWorkers: 2,
            airflowWorkerAutoscaling: { max: 4, queueTarget: 8 },
        });
        expect(Object.isFrozen(config?.replicas)).toBe(true);
        expect(await pulumi.isSecret(config!.data.oandaToken!)).toBe(true);
    });
});

describe("bad configuration fails before any resource is declared", () => {
    test("the program stops with every problem before it declares a resource", async () => {
        const { message, registered } = await failure("dev", { config: { namespace: "FX_ML", fastapiReplicas: 0 } });
        expect(message).toContain("Invalid configuration for stack 'dev' (2 problems):");
        expect(message).toContain(`'fx-ml-pipeline:namespace' value "FX_ML" is invalid`);
        expect(message).toContain(`'fx-ml-pipeline:fastapiReplicas' value 0 is invalid`);
        expect(registered).toEqual([]);
    });

    test("each problem is reported once, also for keys several settings depend on", () => {
        const problems = problemsOf("gpu", {
            config: { postgresBackups: "maybe", airflowWorkerAutoscaling: "perhaps" },
        });
        expect(keysAndRules(problems)).toEqual([
            { key: "airflowWorkerAutoscaling", rule: "type" },
            { key: "postgresBackups", rule: "type" },
        ]);
    });

    test("every problem is reported at once", () => {
        const problems = problemsOf("dev", { config: { namespace: "Bad", gpuCount: 0, tlsIssuer: "x" } });
        expect(keysAndRules(problems)).toEqual([
            { key: "namespace", rule: "pattern" },
            { key: "gpuCount", rule: "range" },
            { key: "tlsIssuer", rule: "choice" },
        ]);
    });

    test("the dev stack runs on sample data without any secret, and without a warning", async () => {
        const run = await runStack("dev", {
            unsetSecrets: [
                "oandaToken",
                "oandaAccountId",
                "registryPassword",
                "hfToken",
                "backupAccessKeyId",
                "backupSecretAccessKey",
            ],
        });
        expect(run.outputs.namespace.value).toBe("fx-ml");
        expect(run.warnings).toEqual([]);
    });

    test("a fresh gpu stack is told each secret it needs, with the command that sets it", async () => {
        const needed = [
            "registryPassword",
            "oandaToken",
            "oandaAccountId",
            "hfToken",
            "backupAccessKeyId",
            "backupSecretAccessKey",
        ];
        const problems = problemsOf("gpu", { unsetSecrets: needed });
        expect(keysAndRules(problems)).toEqual(needed.map((key) => ({ key, rule: "secret-needed" })));
        for (const [i, key] of needed.entries()) {
            expect(problems[i].message).toContain(`'fx-ml-pipeline:${key}' value "<unset>" is invalid`);
            expect(problems[i].message).toContain(`pulumi config set --secret ${key} <value> --stack gpu`);
        }
    });

    test("secrets set on a stack that does not use them are warnings, never showing the value", async () => {
        const run = await runStack("dev");
        expect(run.warnings).toEqual([
            "Configuration 'fx-ml-pipeline:registryPassword' is set but has no effect without registryUsername (the registry takes no credentials).",
            "Configuration 'fx-ml-pipeline:hfToken' is set but has no effect unless FinGPT runs in model mode (fingptEnabled true, fingptMode model).",
            "Configuration 'fx-ml-pipeline:oandaToken' is set but has no effect while dataSource is sample.",
            "Configuration 'fx-ml-pipeline:oandaAccountId' is set but has no effect while dataSource is sample.",
            "Configuration 'fx-ml-pipeline:backupAccessKeyId' is set but has no effect while postgresBackups is false.",
            "Configuration 'fx-ml-pipeline:backupSecretAccessKey' is set but has no effect while postgresBackups is false.",
        ]);
        expect(run.ofType("kubernetes:core/v1:Secret", /huggingface|oanda/)).toEqual([]);
        const gpu = await runStack("gpu");
        expect(gpu.warnings).toEqual([]);
    });

    test("a setting equal to its default is no problem where it has no effect", async () => {
        const run = await runStack("dev", {
            config: { gpuCount: 1, acmeServer: "https://acme-staging-v02.api.letsencrypt.org/directory" },
        });
        expect(run.outputs.namespace.value).toBe("fx-ml");
    });

    test("the seed's Airflow 2.7.0 and MLflow 2.9.2 stay selectable for a pipeline checkout of your own", async () => {
        const run = await runStack("dev", {
            config: { airflowVersion: "2.7.0", mlflowVersion: "2.9.2", appContext: "test/fixtures/own-pipeline" },
        });
        const web = run.one("kubernetes:apps/v1:Deployment", "airflow-webserver").inputs.spec.template.spec;
        expect(web.containers[0].args).toEqual(["bash", "-c", "exec airflow webserver"]);
    });

    test("FinGPT in lexicon mode runs without GPUs", async () => {
        const run = await runStack("dev", { config: { fingptEnabled: true, fingptMode: "lexicon" } });
        expect(run.outputs.namespace.value).toBe("fx-ml");
    });
});

describe("declared defaults", () => {
    test("Airflow and MLflow defaults match the versions the reference app is tested with", () => {
        const fs = require("fs");
        const path = require("path");
        const { projectConfig, ROOT } = require("../tools/harness");
        const env = fs.readFileSync(path.join(ROOT, "app/requirements/versions.env"), "utf8");
        const pinned = (key: string) => new RegExp(`^${key}=(\\S+)$`, "m").exec(env)?.[1];
        expect(projectConfig().airflowVersion.default).toBe(pinned("AIRFLOW_VERSION"));
        expect(projectConfig().mlflowVersion.default).toBe(pinned("MLFLOW_VERSION"));
    });

    test("every declared key has a type, a description and a default, except the cluster every stack must name", () => {
        const { projectConfig } = require("../tools/harness");
        // The CLI requires every declared key without a default, so only kubeContext goes without one.
        for (const [key, decl] of Object.entries<any>(projectConfig())) {
            if (key.includes(":")) continue; // another namespace's value (pulumi:disable-default-providers)
            expect([key, typeof decl.type, typeof decl.description]).toEqual([key, "string", "string"]);
            expect([key, decl.secret, decl.default === undefined]).toEqual([key, undefined, key === "kubeContext"]);
        }
    });

    test("secret keys are declared in config/secrets.yaml, not in Pulumi.yaml, whose CLI would require them", () => {
        const { projectConfig, secretKeys } = require("../tools/harness");
        expect(secretKeys()).toEqual([
            "registryPassword",
            "oandaToken",
            "oandaAccountId",
            "hfToken",
            "backupAccessKeyId",
            "backupSecretAccessKey",
        ]);
        for (const key of secretKeys()) expect([key, key in projectConfig()]).toEqual([key, false]);
    });

    test("the preview's secret environment (tools/engine.ts) names every secret key, and maps both ways", () => {
        const { secretKeys } = require("../tools/harness");
        const { SECRET_ENV, secretsFromEnv, secretsToEnv } = require("../tools/engine");
        expect(Object.keys(SECRET_ENV).sort()).toEqual([...secretKeys()].sort());
        const secrets = { oandaToken: "t", hfToken: "h" };
        expect(secretsToEnv(secrets)).toEqual({ FX_OANDA_TOKEN: "t", FX_HF_TOKEN: "h" });
        expect(secretsFromEnv({ ...secretsToEnv(secrets), PATH: "/bin" })).toEqual(secrets);
        expect(() => secretsToEnv({ oandaTokn: "t" })).toThrow(/oandaTokn is not a secret config key/);
    });

    test("each version default is a release config/versions.yaml lists", () => {
        const { projectConfig } = require("../tools/harness");
        expect(VERSION_KEYS).toEqual({
            postgresVersion: "postgres",
            redisVersion: "redis",
            airflowVersion: "airflow",
            mlflowVersion: "mlflow",
        });
        for (const [key, list] of Object.entries(VERSION_KEYS)) {
            expect([key, SUPPORTED_VERSIONS[list].releases.includes(projectConfig()[key].default)]).toEqual([
                key,
                true,
            ]);
        }
        expect(SUPPORTED_VERSIONS.airflow.releases).toContain("2.7.0");
        expect(SUPPORTED_VERSIONS.mlflow.releases).toContain("2.9.2");
    });
});

describe("chartRepository", () => {
    test("a folder of the pinned archives: every release, cert-manager's included, installs from it", async () => {
        const folder = SHARED_DATA.charts;
        const run = await runStack("gpu", { config: { chartRepository: folder } });
        const charts = run.ofType("kubernetes:helm.sh/v3:Release").map((r) => r.inputs.chart);
        expect(charts.sort()).toEqual(
            [
                "cloudnative-pg-0.29.0.tgz",
                "cluster-0.8.1.tgz",
                "grafana-12.11.1.tgz",
                "nvidia-device-plugin-0.20.0.tgz",
                // the Postgres backups' Barman Cloud plugin (gpu turns backups on)
                "plugin-barman-cloud-0.7.0.tgz",
                "prometheus-29.27.0.tgz",
                "prometheus-statsd-exporter-0.15.0.tgz",
                "redis-1.3.8.tgz",
            ].map((f) => path.join(folder, f)),
        );
        for (const r of run.ofType("kubernetes:helm.sh/v3:Release")) expect(r.inputs.repositoryOpts).toBeUndefined();
        const certManager = run.one("kubernetes-cert-manager:index:CertManager", "cert-manager");
        expect(certManager.inputs.helmOptions.chart).toBe(path.join(folder, "cert-manager-v1.19.1.tgz"));
        // An explicit empty repository: the component would otherwise fill in charts.jetstack.io and look there.
        expect(certManager.inputs.helmOptions.repositoryOpts).toEqual({ repo: "" });
    });

    test("an OCI registry: each chart at <registry path>/<chart>, at its pinned version", async () => {
        const run = await runStack("dev", { config: { chartRepository: "oci://registry.internal/charts/" } });
        const redis = run.ofType("kubernetes:helm.sh/v3:Release").find((r) => r.inputs.chart.endsWith("/redis"))!;
        expect(redis.inputs).toMatchObject({ chart: "oci://registry.internal/charts/redis", version: "1.3.8" });
    });
});

describe("each range and allowed set is stated once (config/rules.ts)", () => {
    test("Pulumi.yaml's descriptions state the ranges and allowed sets config enforces", () => {
        expect(descriptionProblems(DECLARED)).toEqual([]);
    });

    /** Pulumi.yaml's declarations with one description replaced. */
    const withDescription = (key: string, description: string) => ({
        ...DECLARED,
        [key]: { ...DECLARED[key], description },
    });

    test.each([
        [
            "a range that differs",
            "fastapiReplicas",
            "Minimum FastAPI replicas, 1 to 10.",
            'Pulumi.yaml fastapiReplicas: the description says "1 to 10", but config/rules.ts enforces 1 to 20',
        ],
        [
            "no range at all",
            "gpuCount",
            "nvidia.com/gpu limit of the FinGPT pod.",
            "Pulumi.yaml gpuCount: the description says no range, but config/rules.ts enforces 1 to 8",
        ],
        [
            "a cross-key floor left out",
            "airflowWorkerMaxReplicas",
            "Most Celery workers KEDA scales to, 1 to 20.",
            "Pulumi.yaml airflowWorkerMaxReplicas: the description says nothing of the floor airflowWorkerReplicas, but config/rules.ts enforces 1 to 20 and at least airflowWorkerReplicas",
        ],
        [
            "an allowed word left out",
            "tlsIssuer",
            "selfsigned (a private CA) or vault.",
            "Pulumi.yaml tlsIssuer: the description says nothing of acme, but config/rules.ts enforces one of selfsigned, acme",
        ],
        [
            "a version range that differs from config/versions.yaml",
            "postgresVersion",
            "Postgres major version, one listed in config/versions.yaml (14 to 17).",
            'Pulumi.yaml postgresVersion: the description says "14 to 17", but config/rules.ts enforces the releases config/versions.yaml lists for postgres, 14 to 18',
        ],
        [
            "an oldest release that is not the oldest listed",
            "airflowVersion",
            "Apache Airflow release, one listed in config/versions.yaml (2.6.0 or later).",
            'Pulumi.yaml airflowVersion: the description says "2.6.0 or later", but config/rules.ts enforces the releases config/versions.yaml lists for airflow, 2.7.0 to',
        ],
        [
            "a series with no release listed",
            "redisVersion",
            "Tag of the official redis image, a 7.4.x or 8.2.x release listed in config/versions.yaml.",
            'Pulumi.yaml redisVersion: the description says "8.2.x"',
        ],
        [
            "a range on a key config gives none",
            "namespace",
            "Namespace of the pipeline, 1 to 63 characters.",
            'Pulumi.yaml namespace: the description says "1 to 63", but config/rules.ts enforces no range for this key',
        ],
    ])("%s fails the check, naming the key, the description and the rule", (_what, key, description, message) => {
        const problems = descriptionProblems(withDescription(key, description));
        expect(problems).toHaveLength(1);
        expect(problems[0]).toContain(message);
    });

    test("an integer key without a rule, and a rule for a key Pulumi.yaml lacks, are named", () => {
        const { gpuCount, ...rest } = DECLARED;
        expect(descriptionProblems({ ...rest, cacheTtl: { type: "integer", description: "Seconds." } })).toEqual([
            "config/rules.ts has a rule for gpuCount, which Pulumi.yaml does not declare",
            "Pulumi.yaml cacheTtl: an integer key without a range in config/rules.ts RANGES",
        ]);
        expect(gpuCount.type).toBe("integer");
    });

    test("every integer key is refused one above its maximum and one below its minimum, in one run each", async () => {
        // Written down, not read from RANGES: the table is what this test checks loadConfig against.
        expect(RANGES).toEqual({
            fastapiReplicas: { min: 1, max: 20 },
            fastapiMaxReplicas: { min: 1, max: 50, atLeast: "fastapiReplicas" },
            fastapiWorkers: { min: 1, max: 8 },
            airflowWorkerReplicas: { min: 1, max: 20 },
            airflowWebserverReplicas: { min: 1, max: 5 },
            airflowApiWorkers: { min: 1, max: 8 },
            airflowWorkerMaxReplicas: { min: 1, max: 20, atLeast: "airflowWorkerReplicas" },
            airflowWorkerQueueTarget: { min: 1, max: 1000 },
            postgresInstances: { min: 1, max: 5 },
            gpuCount: { min: 1, max: 8 },
        });
        const keys = Object.keys(RANGES) as (keyof typeof RANGES)[];
        for (const edge of ["above", "below"] as const) {
            const config: Record<string, unknown> = { airflowWorkerAutoscaling: true };
            for (const k of keys) config[k] = edge === "above" ? RANGES[k].max + 1 : RANGES[k].min - 1;
            const problems = problemsOf("gpu", { config });
            expect(
                problems
                    .map(({ key, value, rule }) => ({ key, value, rule }))
                    .sort((a, b) => a.key.localeCompare(b.key)),
            ).toEqual(
                keys
                    .map((key) => ({ key, value: config[key], rule: "range" }))
                    .sort((a, b) => a.key.localeCompare(b.key)),
            );
        }
        // The largest values allowed are accepted (each maximum at least its floor's).
        const max = Object.fromEntries(keys.map((k) => [k, RANGES[k].max]));
        const run = await runStack("gpu", { config: { ...max, airflowWorkerAutoscaling: true } });
        const hpa = run.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "fx-autoscaler").inputs.spec;
        expect([hpa.minReplicas, hpa.maxReplicas]).toEqual([20, 50]);
    });
});

describe("config/versions.yaml", () => {
    test("the Postgres releases are the majors that have a pinned image", () => {
        expect(SUPPORTED_VERSIONS.postgres.releases).toEqual(["14", "15", "16", "17", "18"]);
        for (const [major, image] of Object.entries(SUPPORTED_VERSIONS.postgres.images!)) {
            expect(image).toMatch(
                new RegExp(`^ghcr\\.io/cloudnative-pg/postgresql:${major}\\.[0-9]+-standard-trixie$`),
            );
        }
    });

    test("every Airflow release is a 2.x or 3.x release, the majors the Airflow component renders", () => {
        const doc = { ...SUPPORTED_VERSIONS, airflow: { releases: ["3.3.2", "4.0.0"] } };
        expect(() => checkVersions("versions.yaml", doc)).toThrow(
            "versions.yaml: airflow.releases 4.0.0: the Airflow component renders 2.x and 3.x releases only",
        );
        const noImages = { ...SUPPORTED_VERSIONS, postgres: { releases: ["17"] } };
        expect(() => checkVersions("versions.yaml", noImages)).toThrow("postgres.images must map each supported major");
        expect(["2.7.0", "3.3.2", "4.0.0", "3.1"].map(isAirflowRelease)).toEqual([true, true, false, false]);
    });
});
