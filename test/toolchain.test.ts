import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { ROOT } from "../tools/harness";

/**
 * The toolchain is pinned once and the pins agree: Node.js in .node-version (the workflow and scripts/node.sh read it),
 * the Pulumi CLI at the version of @pulumi/pulumi. actionlint (in npm test) checks the workflow's syntax; this checks
 * what it must do.
 */
const read = (f: string) => fs.readFileSync(path.join(ROOT, f), "utf8");
const workflow = parse(read(".github/workflows/pull-request.yml"));
const pkg = JSON.parse(read("package.json"));
type Step = { uses?: string; run?: string; with?: Record<string, string>; env?: Record<string, string>; if?: string };
const steps = (job: string): Step[] => workflow.jobs[job].steps;

describe("Node.js 24 everywhere", () => {
    test(".node-version pins a 24.x release and package.json requires 24", () => {
        expect(read(".node-version").trim()).toMatch(/^24\.\d+\.\d+$/);
        expect(pkg.engines.node).toBe(">=24");
    });

    test("every setup-node step of the workflow reads .node-version", () => {
        const setups = ["test", "preview"].flatMap(steps).filter((s) => s.uses?.startsWith("actions/setup-node@"));
        expect(setups).toHaveLength(2);
        for (const s of setups) expect(s.with).toMatchObject({ "node-version-file": ".node-version" });
    });

    test("scripts/node.sh leaves a Node.js 24 alone and refuses an older one when told not to install", () => {
        const bin = fs.mkdtempSync(path.join(os.tmpdir(), "fx-node-"));
        const fake = path.join(ROOT, "test/fixtures/fake-bin/node");
        fs.symlinkSync(fake, path.join(bin, "node"));
        const run = (version: string) =>
            execFileSync("bash", ["-c", 'source scripts/node.sh && echo "$PATH"'], {
                cwd: ROOT,
                env: { ...process.env, PATH: `${bin}:/usr/bin:/bin`, FAKE_NODE_VERSION: version, FX_NODE_INSTALL: "0" },
                stdio: "pipe",
            }).toString();
        expect(run("v24.1.0").trim()).toBe(`${bin}:/usr/bin:/bin`);
        let message = "";
        try {
            run("v20.19.0");
        } catch (e) {
            message = String((e as { stderr: Buffer }).stderr);
        }
        expect(message).toBe("error: Node.js 24 is needed (found v20.19.0): install it from https://nodejs.org/\n");
    });

    test(".ci/run sources scripts/node.sh before npm ci", () => {
        const ci = read(".ci/run");
        expect(ci.indexOf("source scripts/node.sh")).toBeGreaterThan(0);
        expect(ci.indexOf("source scripts/node.sh")).toBeLessThan(ci.indexOf("npm ci"));
    });
});

describe("the pull-request workflow", () => {
    test("pins the Pulumi CLI to the version of @pulumi/pulumi, as dev-up.sh asks for", () => {
        expect(workflow.env.PULUMI_VERSION).toBe(pkg.dependencies["@pulumi/pulumi"]);
        const install = steps("preview").find((s) => s.uses?.startsWith("pulumi/actions@"));
        expect(install?.with).toEqual({ "pulumi-version": "${{ env.PULUMI_VERSION }}" });
        expect(read("scripts/dev-up.sh")).toContain(`PULUMI_VERSION="${pkg.dependencies["@pulumi/pulumi"]}"`);
    });

    test("keeps PATH under sudo (sudo -E alone resets it to secure_path)", () => {
        const sudo = steps("test").filter((s) => s.run?.includes("sudo"));
        expect(sudo.map((s) => s.run?.trim())).toEqual(['sudo -E env "PATH=$PATH" bash .ci/run']);
    });

    test("logs in to Pulumi Cloud or a self-managed backend, and fails naming both secrets without either", () => {
        const login = steps("preview").find((s) => s.run?.includes("pulumi login"))!.run!;
        expect(login).toContain('pulumi login "$PULUMI_BACKEND_URL"');
        expect(login).toMatch(/elif \[ -n "\$PULUMI_ACCESS_TOKEN" \]; then\s+pulumi login\n/);
        expect(login).toContain("::error::no state backend: add the repository secret PULUMI_ACCESS_TOKEN");
        expect(workflow.jobs.preview.env).toMatchObject({
            PULUMI_ACCESS_TOKEN: "${{ secrets.PULUMI_ACCESS_TOKEN }}",
            PULUMI_BACKEND_URL: "${{ secrets.PULUMI_BACKEND_URL }}",
            PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
        });
    });

    test("previews each stack with the engine tier's command, the gpu secrets from repository secrets", () => {
        expect(workflow.jobs.preview.strategy.matrix.stack).toEqual(["dev", "gpu"]);
        const preview = steps("preview").find((s) => s.run?.includes("npm run preview"))!;
        expect(preview.run).toContain('npm run preview -- "$STACK"');
        expect(preview.env?.STACK).toBe("${{ matrix.stack }}");
        for (const name of [
            "FX_OANDA_TOKEN",
            "FX_OANDA_ACCOUNT_ID",
            "FX_REGISTRY_PASSWORD",
            "FX_HF_TOKEN",
            "FX_BACKUP_ACCESS_KEY_ID",
            "FX_BACKUP_SECRET_ACCESS_KEY",
        ]) {
            expect(preview.env?.[name]).toBe(`\${{ matrix.stack == 'gpu' && secrets.${name} || '' }}`);
        }
        // The dev preview's kind cluster is named so that its context is dev's kubeContext.
        const kind = steps("preview").find((s) => s.uses?.startsWith("helm/kind-action@"))!;
        expect(`kind-${kind.with?.cluster_name}`).toBe(
            parse(read("Pulumi.dev.yaml")).config["fx-ml-pipeline:kubeContext"],
        );
    });

    test("asks for no more than read access", () => {
        expect(workflow.permissions).toEqual({ contents: "read" });
    });
});

describe("the Kubernetes provider plugin's version is decided once (scripts/tools.sh, from package.json)", () => {
    test("tools/plugins.ts reads the version the binary was built as, from its build folder", () => {
        const { builtPluginVersion } = require("../tools/plugins");
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-plugin-"));
        fs.mkdirSync(path.join(dir, "build", "bin"), { recursive: true });
        fs.writeFileSync(path.join(dir, "build", "bin", "pulumi-resource-kubernetes"), "");
        fs.symlinkSync(path.join(dir, "build", "bin", "pulumi-resource-kubernetes"), path.join(dir, "link"));
        expect(() => builtPluginVersion(path.join(dir, "link"))).toThrow(/build\/version missing: run `npm run tools`/);
        fs.writeFileSync(path.join(dir, "build", "version"), "4.34.2\n");
        expect(builtPluginVersion(path.join(dir, "link"))).toBe("4.34.2");
        fs.rmSync(dir, { recursive: true, force: true });
    });

    test("scripts/tools.sh builds the version the @pulumi/kubernetes SDK asks the CLI for", () => {
        const sdk = JSON.parse(read("node_modules/@pulumi/kubernetes/package.json"));
        expect(read("scripts/tools.sh")).toContain(
            `PULUMI_K8S_PLUGIN_VERSION=$(node -p 'require("./package.json").dependencies["@pulumi/kubernetes"]')`,
        );
        expect(pkg.dependencies["@pulumi/kubernetes"]).toBe(sdk.pulumi.version);
    });
});
