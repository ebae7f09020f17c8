/**
 * Installs the provider plugins the engine tier's `pulumi preview` loads into a PULUMI_HOME, with the CLI's own
 * `pulumi plugin install --file`, at the exact versions the npm SDKs ask for: the real Kubernetes provider (built by
 * scripts/tools.sh) and the three STAND-INS of tools/standins/provider.ts for the plugins no registry here serves.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ROOT, TOOLS_BIN } from "./stacks";

function sdkPluginVersion(pkg: string): string {
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8"));
    return manifest.pulumi.version;
}

/** The version scripts/tools.sh built a provider binary as (the `version` file of its build folder). */
export function builtPluginVersion(binary: string): string {
    const file = path.join(path.dirname(fs.realpathSync(binary)), "..", "version");
    if (!fs.existsSync(file)) throw new Error(`${file} missing: run \`npm run tools\` (scripts/tools.sh writes it)`);
    return fs.readFileSync(file, "utf8").trim();
}

/** The packages whose real plugins cannot be had here, stood in for by tools/standins/provider.ts. */
export const STAND_INS = ["random", "docker", "kubernetes-cert-manager"] as const;

export interface InstalledPlugin {
    name: string;
    version: string;
    standIn: boolean;
}

export function installPlugins(pulumiHome: string, scratch: string): InstalledPlugin[] {
    const pulumi = path.join(TOOLS_BIN, "pulumi");
    const env = { ...process.env, PULUMI_HOME: pulumiHome, PULUMI_SKIP_UPDATE_CHECK: "true" };
    const install = (name: string, version: string, file: string) =>
        execFileSync(pulumi, ["plugin", "install", "resource", name, version, "--file", file], {
            env,
            stdio: ["ignore", "pipe", "pipe"],
        });
    const installed: InstalledPlugin[] = [];
    const k8sPlugin = path.join(TOOLS_BIN, "pulumi-resource-kubernetes");
    const k8sVersion = builtPluginVersion(k8sPlugin);
    const asked = sdkPluginVersion("@pulumi/kubernetes");
    if (k8sVersion !== asked) {
        throw new Error(
            `${k8sPlugin} was built as version ${k8sVersion}, but @pulumi/kubernetes asks for ${asked}: ` +
                "run `npm run tools` (scripts/tools.sh builds the version package.json names)",
        );
    }
    install("kubernetes", k8sVersion, k8sPlugin);
    installed.push({ name: "kubernetes", version: k8sVersion, standIn: false });
    for (const name of STAND_INS) {
        const version = sdkPluginVersion(`@pulumi/${name}`);
        const dir = path.join(scratch, `standin-${name}`);
        fs.mkdirSync(dir, { recursive: true });
        const script = [
            "#!/bin/sh",
            `# STAND-IN for pulumi-resource-${name} v${version}: tools/standins/provider.ts (engine tier only).`,
            `export TS_NODE_PROJECT='${path.join(ROOT, "tsconfig.json")}'`,
            `exec node -r '${path.join(ROOT, "node_modules", "ts-node", "register", "transpile-only")}' \\`,
            `    '${path.join(ROOT, "tools", "standins", "provider.ts")}' ${name} ${version} "$@"`,
            "",
        ].join("\n");
        fs.writeFileSync(path.join(dir, `pulumi-resource-${name}`), script, { mode: 0o755 });
        install(name, version, dir);
        installed.push({ name, version, standIn: true });
    }
    return installed;
}

/**
 * The policy pack as an executable analyzer: without a Node.js language host the CLI cannot start a Node.js policy
 * pack folder, but it launches an executable given as `--policy-pack` directly (pulumi pkg/v3
 * resource/plugin/analyzer_plugin.go). This launcher does what the language host's RunPlugin does for the folder:
 * it starts Pulumi's own `@pulumi/pulumi/cmd/run-policy-pack` on the pack, in the pack's folder.
 */
export function policyPackLauncher(scratch: string, packDir: string): string {
    const dir = path.join(scratch, "policy-launcher");
    fs.mkdirSync(dir, { recursive: true });
    const launcher = path.join(dir, "fx-ml-pipeline-policy");
    const runner = path.join(ROOT, "node_modules", "@pulumi", "pulumi", "cmd", "run-policy-pack");
    const script = ["#!/bin/sh", `cd '${packDir}' || exit 1`, `exec node '${runner}' "$1" .`, ""].join("\n");
    fs.writeFileSync(launcher, script, { mode: 0o755 });
    return launcher;
}
