/**
 * `npm run preview -- <stack>`: `pulumi preview` of a stack the way the README sets one up, for a laptop and the PR
 * workflow. Creates the stack when missing, sets the secrets given in the environment (tools/engine.ts SECRET_ENV:
 * FX_OANDA_TOKEN, FX_OANDA_ACCOUNT_ID, FX_REGISTRY_PASSWORD, FX_HF_TOKEN) with `--secret`, then previews with the
 * policy pack. The backend and passphrase come from the usual Pulumi variables (PULUMI_BACKEND_URL or
 * PULUMI_ACCESS_TOKEN, PULUMI_CONFIG_PASSPHRASE). The engine tier runs the same steps (test/tiers/engine.test.ts).
 */
import * as path from "path";
import { prepareStack, preview, ROOT, secretsFromEnv, StackName, STACKS } from "../tools/engine";

async function main(): Promise<void> {
    const stack = process.argv[2] as StackName;
    if (!STACKS.includes(stack)) {
        throw new Error(
            `usage: npm run preview -- <stack>; got '${process.argv[2] ?? ""}', allowed: ${STACKS.join(", ")}`,
        );
    }
    const s = await prepareStack({ stack, workDir: ROOT, secrets: secretsFromEnv() });
    const { result, steps } = await preview(s, {
        onOutput: (o) => process.stdout.write(o),
        policyPacks: [path.join(ROOT, "policy")],
        policyPackConfigs: [path.join(ROOT, "policy", "config", `${stack}.json`)],
    });
    console.log(`preview of ${stack}: ${steps.size} resources, ${JSON.stringify(result.changeSummary)}`);
}

main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
});
