import { runStack, RunOptions, StackName } from "./harness";

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
const BAD: [string, StackName, RunOptions, string[]][] = [
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
    ["unsupported Postgres major", "dev", { config: { postgresVersion: "12" } }, ["postgresVersion", "12", "14", "18"]],
    ["Redis not 7.x", "dev", { config: { redisVersion: "8.2.0" } }, ["redisVersion", "8.2.0", "7.x.y"]],
    [
        "Airflow older than supported",
        "dev",
        { config: { airflowVersion: "2.6.3" } },
        ["airflowVersion", "2.6.3", "2.7.0 or later"],
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
        ["mlflowVersion", "latest", "x.y.z"],
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
        "unknown platform",
        "dev",
        { config: { imagePlatform: "windows/amd64" } },
        ["imagePlatform", "windows/amd64", "linux/amd64"],
    ],
    ["bad retention", "dev", { config: { prometheusRetention: "forever" } }, ["prometheusRetention", "forever", "15d"]],
];

describe("bad configuration fails before any resource is declared", () => {
    test.each(BAD)("%s", async (_name, stack, options, words) => {
        const { message, registered } = await failure(stack, options);
        for (const w of words) expect(message).toContain(w);
        expect(message).toContain(`Invalid configuration for stack '${stack}'`);
        expect(registered).toEqual([]);
    });

    test("every problem is reported at once", async () => {
        const { message } = await failure("dev", { config: { namespace: "Bad", gpuCount: 0, tlsIssuer: "x" } });
        expect(message).toMatch(/3 problems/);
        for (const key of ["namespace", "gpuCount", "tlsIssuer"]) expect(message).toContain(`fx-ml-pipeline:${key}`);
    });

    test("the dev stack runs on sample data without any OANDA secret", async () => {
        const run = await runStack("dev", {
            unsetSecrets: ["oandaToken", "oandaAccountId", "registryPassword", "hfToken"],
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
        const { projectConfig, ROOT } = require("./harness");
        const env = fs.readFileSync(path.join(ROOT, "app/requirements/versions.env"), "utf8");
        const pinned = (key: string) => new RegExp(`^${key}=(\\S+)$`, "m").exec(env)?.[1];
        expect(projectConfig().airflowVersion.default).toBe(pinned("AIRFLOW_VERSION"));
        expect(projectConfig().mlflowVersion.default).toBe(pinned("MLFLOW_VERSION"));
    });

    test("every declared key has a type and a description, and secrets have no default", () => {
        const { projectConfig } = require("./harness");
        for (const [key, decl] of Object.entries<any>(projectConfig())) {
            expect([key, typeof decl.type, typeof decl.description]).toEqual([key, "string", "string"]);
            if (decl.secret) expect([key, decl.default]).toEqual([key, undefined]);
            else expect([key, decl.default === undefined]).toEqual([key, false]);
        }
    });
});
