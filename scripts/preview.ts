/**
 * `npm run preview -- <stack> [options]`: `pulumi preview` of a stack set up the way the README tells a user, run from
 * the project folder. The PR workflow runs it for each stack and the engine tier (test/tiers/engine.test.ts) runs
 * this very script, so both prove the same steps: select the stack or create it (`pulumi stack init`), set config,
 * set the secrets given in the environment with `--secret` (FX_OANDA_TOKEN, FX_OANDA_ACCOUNT_ID,
 * FX_REGISTRY_PASSWORD, FX_HF_TOKEN, FX_BACKUP_ACCESS_KEY_ID, FX_BACKUP_SECRET_ACCESS_KEY: tools/engine.ts
 * SECRET_ENV), preview with the policy pack. The backend and
 * passphrase come from the usual Pulumi variables (PULUMI_BACKEND_URL or PULUMI_ACCESS_TOKEN, PULUMI_CONFIG_PASSPHRASE);
 * the CLI is the `pulumi` on PATH.
 *
 * Options:
 *   --config key=value   plain config to set first (repeatable), e.g. --config kubeContext=kind-fx-ml
 *   --policy-pack PATH   the policy pack (default: policy/ with policy/config/<stack>.json)
 *   --inline             run the program in this process through the Automation API instead of the Node.js
 *                        language host (where no language host is installed, as on the test machines)
 *   --program FILE       with --inline, the program module to run (default: index.ts)
 *   --summary FILE       write the planned steps (URN -> operation) and the change summary as JSON
 */
import * as fs from "fs";
import * as path from "path";
import { parseArgs } from "util";
import { prepareStack, preview, secretsFromEnv, StackName, STACKS } from "../tools/engine";

async function main(): Promise<void> {
    const { values, positionals } = parseArgs({
        allowPositionals: true,
        options: {
            config: { type: "string", multiple: true, default: [] },
            "policy-pack": { type: "string" },
            inline: { type: "boolean", default: false },
            program: { type: "string" },
            summary: { type: "string" },
        },
    });
    const stack = positionals[0] as StackName;
    if (positionals.length !== 1 || !STACKS.includes(stack)) {
        throw new Error(
            `usage: npm run preview -- <stack> [--config key=value]... [--policy-pack PATH] [--inline] ` +
                `[--program FILE] [--summary FILE]; got '${positionals.join(" ")}', stacks: ${STACKS.join(", ")}`,
        );
    }
    const config: Record<string, string> = {};
    for (const pair of values.config ?? []) {
        const eq = pair.indexOf("=");
        if (eq < 1) throw new Error(`--config takes key=value, got '${pair}'`);
        config[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const workDir = process.cwd();
    if (!fs.existsSync(path.join(workDir, "Pulumi.yaml"))) {
        throw new Error(`run npm run preview from the project folder (no Pulumi.yaml in ${workDir})`);
    }
    const programFile = path.resolve(workDir, values.program ?? "index.ts");
    const s = await prepareStack({
        stack,
        workDir,
        program: values.inline ? async () => ({ ...(await import(programFile)) }) : undefined,
        config,
        secrets: secretsFromEnv(),
    });
    const pack = values["policy-pack"] ?? path.join(workDir, "policy");
    const { result, steps } = await preview(s, {
        onOutput: (o) => process.stdout.write(o),
        policyPacks: [pack],
        policyPackConfigs: [path.join(workDir, "policy", "config", `${stack}.json`)],
    });
    if (values.summary) {
        const summary = { stack, changeSummary: result.changeSummary, steps: Object.fromEntries(steps) };
        fs.writeFileSync(values.summary, JSON.stringify(summary, null, 2) + "\n");
    }
    console.log(`preview of ${stack}: ${steps.size} resources, ${JSON.stringify(result.changeSummary)}`);
}

main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
});
