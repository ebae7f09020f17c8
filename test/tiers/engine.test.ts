/**
 * The engine tier (`npm run test:engine`): the real Pulumi CLI (built by scripts/tools.sh) and the real Kubernetes
 * provider plugin preview both stacks against a real kube-apiserver (tools/apiserver.ts), offline, through the very
 * command the PR workflow runs, `npm run preview -- <stack>` (scripts/preview.ts): the stack created as new, its
 * config from the stack file plus the cluster target and `chartRepository` (a folder of the pinned archives,
 * ../shared/charts), gpu's secrets set with --secret from the environment, the policy pack applied. Two differences,
 * both forced by what these machines lack: the program runs inline (`--inline`: no registry here serves the Node.js
 * language host), and the random, docker and kubernetes-cert-manager plugins are STAND-INS (tools/standins/), since
 * no registry here serves those either.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ApiServer, startApiServer } from "../../tools/apiserver";
import { offlineEngineEnv, projectCopy, secretsToEnv, StackName, urnName, urnType } from "../../tools/engine";
import { installPlugins, InstalledPlugin, policyPackLauncher } from "../../tools/plugins";
import { ROOT, runStack } from "../../tools/harness";
import { SHARED_DATA } from "../../tools/stacks";

const RESULTS = path.join(ROOT, "out", "engine");

/** Test values for gpu's secrets, given as the PR workflow gives them (environment -> `pulumi config set --secret`). */
const GPU_SECRETS: Record<string, string> = {
    oandaToken: "engine-tier-oanda-token",
    oandaAccountId: "101-001-0000000-001",
    registryPassword: "engine-tier-registry-token",
    hfToken: "engine-tier-hf-token",
    backupAccessKeyId: "engine-tier-backup-key-id",
    backupSecretAccessKey: "engine-tier-backup-secret",
};

let server: ApiServer;
let home: string;
let env: NodeJS.ProcessEnv;
let plugins: InstalledPlugin[];

interface PreviewRun {
    status: number | null;
    output: string;
    steps: Map<string, string>;
}

/** `npm run preview -- <stack> --inline ...` in a fresh project folder with a throwaway backend of its own. */
function runPreview(
    stack: StackName,
    extra: { config?: Record<string, string>; secrets?: Record<string, string>; program?: string } = {},
): PreviewRun {
    const dir = projectCopy(home);
    const summaryFile = path.join(dir, "preview-summary.json");
    const config = {
        kubeconfig: server.kubeconfig,
        kubeContext: server.context,
        chartRepository: SHARED_DATA.charts,
        ...extra.config,
    };
    const args = [
        "-r",
        path.join(ROOT, "node_modules", "ts-node", "register", "transpile-only"),
        path.join(ROOT, "scripts", "preview.ts"),
        stack,
        "--inline",
        "--policy-pack",
        policyPackLauncher(path.join(home, "plugins"), path.join(ROOT, "policy")),
        "--summary",
        summaryFile,
        ...Object.entries(config).flatMap(([k, v]) => ["--config", `${k}=${v}`]),
        ...(extra.program ? ["--program", extra.program] : []),
    ];
    const r = spawnSync(process.execPath, args, {
        cwd: dir,
        env: {
            ...env,
            ...secretsToEnv(extra.secrets ?? {}),
            PULUMI_BACKEND_URL: `file://${fs.mkdtempSync(path.join(home, "state-"))}`,
            TS_NODE_PROJECT: path.join(ROOT, "tsconfig.json"),
        },
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
        timeout: 900_000,
    });
    const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    const steps = fs.existsSync(summaryFile)
        ? new Map(Object.entries(JSON.parse(fs.readFileSync(summaryFile, "utf8")).steps as Record<string, string>))
        : new Map<string, string>();
    return { status: r.status, output, steps };
}

beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "fx-engine-"));
    server = await startApiServer();
    const pulumiHome = path.join(home, "pulumi-home");
    plugins = installPlugins(pulumiHome, path.join(home, "plugins"));
    // The CLI and every plugin get only this environment: no FX_* secret leaks in from the caller's.
    env = offlineEngineEnv(pulumiHome, "engine-tier");
}, 600_000);

afterAll(async () => {
    await server?.stop();
});

describe.each<StackName>(["dev", "gpu"])("pulumi preview of %s by the real engine", (stack) => {
    let run: PreviewRun;

    beforeAll(() => {
        run = runPreview(stack, { secrets: stack === "gpu" ? GPU_SECRETS : {} });
        const counts: Record<string, number> = {};
        for (const op of run.steps.values()) counts[op] = (counts[op] ?? 0) + 1;
        fs.mkdirSync(RESULTS, { recursive: true });
        const record = {
            stack,
            planned: run.steps.size,
            operations: counts,
            plugins,
            urns: [...run.steps.keys()].sort(),
        };
        fs.writeFileSync(path.join(RESULTS, `${stack}.json`), JSON.stringify(record, null, 2) + "\n");
        fs.writeFileSync(path.join(RESULTS, `${stack}.log`), run.output);
        process.stdout.write(`[engine tier] ${stack}: ${run.steps.size} resources planned ${JSON.stringify(counts)}\n`);
    }, 900_000);

    test("plans every resource for creation, with no error, and the policy pack finds no mandatory violation", () => {
        if (run.status !== 0) throw new Error(`npm run preview -- ${stack} failed:\n${run.output}\n${server.logs(10)}`);
        expect([...new Set(run.steps.values())]).toEqual(["create"]);
        expect(run.output).not.toMatch(/^\s*error:/m);
        // The pack ran on every resource. Images are unknown until built, so the image-tag rule says it cannot
        // judge them in a preview, as it does on every pull request.
        expect(run.output).toMatch(/fx-ml-pipeline@v0\.1\.0/);
        expect(run.output).not.toMatch(/\[mandatory\]/);
    });

    test("plans exactly the resources the program declares under mocks, plus the cert-manager chart's Release", async () => {
        const mock = await runStack(stack);
        const declared = mock.resources.map((r) => `${r.type}::${r.name}`).sort();
        const planned = [...run.steps.keys()]
            .filter((u) => urnType(u) !== "pulumi:pulumi:Stack" && !urnName(u).startsWith("default_"))
            .map((u) => `${urnType(u)}::${urnName(u)}`)
            .filter((id) => id !== "kubernetes:helm.sh/v3:Release::cert-manager-helm")
            .sort();
        expect(planned).toEqual(declared);
        expect([...run.steps.keys()].map(urnName)).toContain("cert-manager-helm");
    });

    test("targets the cluster through one explicit Kubernetes provider, never a default one", () => {
        const providers = [...run.steps.keys()].filter((u) => urnType(u) === "pulumi:providers:kubernetes");
        expect(providers.map(urnName)).toEqual(["cluster"]);
    });
});

describe("the engine's own refusals", () => {
    test("a gpu stack without a secret it needs fails, naming the secret and the command that sets it", () => {
        const withoutToken = Object.fromEntries(Object.entries(GPU_SECRETS).filter(([k]) => k !== "oandaToken"));
        const run = runPreview("gpu", { secrets: withoutToken });
        expect(run.status).not.toBe(0);
        expect(run.output).toMatch(
            /'fx-ml-pipeline:oandaToken'.*pulumi config set --secret oandaToken <value> --stack gpu/,
        );
        expect(run.steps.size).toBe(0);
    }, 600_000);

    test("an undeclared config key fails, naming it and the nearest declared key", () => {
        const run = runPreview("dev", { config: { fastapiReplica: "3" } });
        expect(run.status).not.toBe(0);
        expect(run.output).toMatch(/'fastapiReplica' is not a key of this project.*the nearest is 'fastapiReplicas'/);
    }, 600_000);

    test("a resource input the provider rejects fails with the API server's message", () => {
        // A program of its own, so the main stacks stay whole: the provider's server-side dry-run refuses the name.
        const program = path.join(home, "bad-program.js");
        fs.writeFileSync(
            program,
            [
                `const k8s = require(${JSON.stringify(path.join(ROOT, "node_modules", "@pulumi", "kubernetes"))});`,
                `const provider = new k8s.Provider("cluster", { kubeconfig: ${JSON.stringify(server.kubeconfig)}, context: ${JSON.stringify(server.context)} });`,
                `new k8s.core.v1.ConfigMap("bad", { metadata: { name: "Not_A_DNS_Name" }, data: { a: "b" } }, { provider });`,
                "",
            ].join("\n"),
        );
        const run = runPreview("dev", { program });
        expect(run.status).not.toBe(0);
        expect(run.output).toMatch(/metadata\.name: Invalid value: "Not_A_DNS_Name"/);
    }, 600_000);
});
