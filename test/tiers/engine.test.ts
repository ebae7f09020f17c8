/**
 * The engine tier (`npm run test:engine`): the real Pulumi CLI (built by scripts/tools.sh) and the real Kubernetes
 * provider plugin preview both stacks against a real kube-apiserver (tools/apiserver.ts), offline. Stacks are created
 * and configured as the README tells a user (tools/engine.ts, the same steps as `npm run preview`): a throwaway file
 * backend with a passphrase, the stack file's config, the cluster target, charts from a folder of the pinned archives
 * (`chartRepository`, ../shared/charts), gpu's secrets set with --secret. The program runs as an Automation API inline
 * program because no registry here serves the Node.js language host. The random, docker and kubernetes-cert-manager
 * plugins are STAND-INS (tools/standins/provider.ts): no registry here serves those either.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ApiServer, startApiServer, TOOLS_BIN } from "../../tools/apiserver";
import { prepareStack, preview, PreviewSummary, StackName, urnName, urnType } from "../../tools/engine";
import { installPlugins, InstalledPlugin, policyAnalyzerBin } from "../../tools/plugins";
import { ROOT, runStack } from "../harness";

const SHARED_CHARTS = path.resolve(ROOT, "..", "shared", "charts");
const RESULTS = path.join(ROOT, "out", "engine");
const PULUMI_ROOT = path.dirname(path.dirname(fs.realpathSync(path.join(TOOLS_BIN, "pulumi"))));

/** Test values for gpu's secrets, set with `pulumi config set --secret` as the README tells a user. */
const GPU_SECRETS = {
    oandaToken: "engine-tier-oanda-token",
    oandaAccountId: "101-001-0000000-001",
    registryPassword: "engine-tier-registry-token",
    hfToken: "engine-tier-hf-token",
};

let server: ApiServer;
let home: string;
let env: Record<string, string>;
let plugins: InstalledPlugin[];

/** A project folder laid out as a user's checkout: its own copies of the stack files, the rest linked. */
function projectDir(): string {
    const dir = fs.mkdtempSync(path.join(home, "project-"));
    for (const entry of fs.readdirSync(ROOT)) {
        if (entry === ".git" || entry === "out") continue;
        if (/^Pulumi(\.[a-z]+)?\.yaml$/.test(entry)) fs.copyFileSync(path.join(ROOT, entry), path.join(dir, entry));
        else fs.symlinkSync(path.join(ROOT, entry), path.join(dir, entry));
    }
    return dir;
}

/** The environment with a throwaway file backend of its own, so every stack here starts as new as a user's. */
function withBackend(): Record<string, string> {
    return { ...env, PULUMI_BACKEND_URL: `file://${fs.mkdtempSync(path.join(home, "state-"))}` };
}

/** index.ts as an inline program, loaded afresh for each run (the program's modules hold per-run state). */
async function program(): Promise<Record<string, unknown>> {
    for (const id of Object.keys(require.cache)) {
        if (id.startsWith(ROOT) && !id.includes(`${path.sep}node_modules${path.sep}`) && !id.includes("tools"))
            delete require.cache[id];
    }
    return { ...require(path.join(ROOT, "index.ts")) };
}

async function previewStack(
    stack: StackName,
    extra: { config?: Record<string, string>; secrets?: Record<string, string> } = {},
): Promise<PreviewSummary & { output: string }> {
    let output = "";
    const s = await prepareStack({
        stack,
        workDir: projectDir(),
        program,
        pulumiRoot: PULUMI_ROOT,
        envVars: withBackend(),
        config: {
            kubeconfig: server.kubeconfig,
            kubeContext: server.context,
            chartRepository: SHARED_CHARTS,
            ...extra.config,
        },
        secrets: extra.secrets,
    });
    try {
        const summary = await preview(s, {
            onOutput: (o) => (output += o),
            policyPacks: [path.join(ROOT, "policy")],
            policyPackConfigs: [path.join(ROOT, "policy", "config", `${stack}.json`)],
        });
        return { ...summary, output };
    } catch (e) {
        (e as Error).message += `\n--- engine output ---\n${output}`;
        throw e;
    }
}

beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "fx-engine-"));
    server = await startApiServer();
    const pulumiHome = path.join(home, "pulumi-home");
    plugins = installPlugins(pulumiHome, path.join(home, "plugins"));
    env = {
        PULUMI_HOME: pulumiHome,
        PULUMI_CONFIG_PASSPHRASE: "engine-tier",
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        // Nothing may leave the machine: plugin and chart downloads would go to a closed port.
        HTTP_PROXY: "http://127.0.0.1:9",
        HTTPS_PROXY: "http://127.0.0.1:9",
        NO_PROXY: "127.0.0.1,localhost",
        PATH: [policyAnalyzerBin(path.join(home, "plugins")), TOOLS_BIN, process.env.PATH].join(path.delimiter),
    };
}, 600_000);

afterAll(async () => {
    await server?.stop();
});

describe.each<StackName>(["dev", "gpu"])("pulumi preview of %s by the real engine", (stack) => {
    let summary: PreviewSummary & { output: string };

    beforeAll(async () => {
        summary = await previewStack(stack, { secrets: stack === "gpu" ? GPU_SECRETS : {} });
        const counts: Record<string, number> = {};
        for (const op of summary.steps.values()) counts[op] = (counts[op] ?? 0) + 1;
        fs.mkdirSync(RESULTS, { recursive: true });
        const record = {
            stack,
            planned: summary.steps.size,
            operations: counts,
            plugins,
            urns: [...summary.steps.keys()].sort(),
        };
        fs.writeFileSync(path.join(RESULTS, `${stack}.json`), JSON.stringify(record, null, 2) + "\n");
        process.stdout.write(
            `[engine tier] ${stack}: ${summary.steps.size} resources planned ${JSON.stringify(counts)}\n`,
        );
    }, 900_000);

    test("plans every resource for creation, with no error", () => {
        const ops = new Set(summary.steps.values());
        expect([...ops].sort()).toEqual(["create"]);
        expect(summary.output).not.toMatch(/^\s*error:/m);
    });

    test("plans exactly the resources the program declares under mocks, plus the cert-manager chart's Release", async () => {
        const mock = await runStack(stack, stack === "gpu" ? { config: {} } : {});
        const declared = mock.resources.map((r) => `${r.type}::${r.name}`).sort();
        const planned = [...summary.steps.keys()]
            .filter((u) => !urnType(u).startsWith("pulumi:"))
            .map((u) => `${urnType(u)}::${urnName(u)}`)
            .filter((id) => id !== "kubernetes:helm.sh/v3:Release::cert-manager-helm")
            .sort();
        expect(planned).toEqual(declared);
        expect(summary.steps.size).toBeGreaterThan(declared.length);
    });

    test("targets the cluster through one explicit Kubernetes provider", () => {
        const providers = [...summary.steps.keys()].filter((u) => urnType(u) === "pulumi:providers:kubernetes");
        expect(providers.map(urnName)).toEqual(["cluster"]);
    });
});

describe("the engine's own refusals", () => {
    test("a gpu stack without a secret it needs fails, naming the secret and the command that sets it", async () => {
        const withoutToken = Object.fromEntries(Object.entries(GPU_SECRETS).filter(([k]) => k !== "oandaToken"));
        await expect(previewStack("gpu", { secrets: withoutToken })).rejects.toThrow(
            /oandaToken.*pulumi config set --secret oandaToken/,
        );
    }, 600_000);

    test("an undeclared config key fails, naming it and the nearest declared key", async () => {
        await expect(previewStack("dev", { config: { fastapiReplica: "3" } })).rejects.toThrow(
            /fastapiReplica.*fastapiReplicas/,
        );
    }, 600_000);

    test("a resource input the provider rejects fails with the API server's message", async () => {
        // A two-resource program of its own, so the main stacks stay whole.
        const k8s = require("@pulumi/kubernetes") as typeof import("@pulumi/kubernetes");
        const bad = async () => {
            const provider = new k8s.Provider("cluster", { kubeconfig: server.kubeconfig, context: server.context });
            new k8s.core.v1.ConfigMap("bad", { metadata: { name: "Not_A_DNS_Name" }, data: { a: "b" } }, { provider });
        };
        const s = await prepareStack({
            stack: "dev",
            workDir: projectDir(),
            program: bad,
            pulumiRoot: PULUMI_ROOT,
            envVars: withBackend(),
        });
        let output = "";
        await expect(preview(s, { onOutput: (o) => (output += o) })).rejects.toThrow();
        expect(output).toMatch(/metadata\.name: Invalid value: "Not_A_DNS_Name"/);
    }, 600_000);
});
