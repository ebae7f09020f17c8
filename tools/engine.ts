/**
 * Creates and configures a stack with the Automation API exactly as the README tells a user, then previews it (or
 * runs `up` and `destroy`). Shared by `npm run preview -- <stack>` (a local program: the Pulumi CLI and its Node.js
 * language host, as in the PR workflow and on a laptop) and the engine tier (test/tiers/engine.test.ts and
 * engine-up.test.ts: an inline program, because no registry here serves the language host), so all run the same steps.
 */
import {
    DestroyResult,
    EngineEvent,
    InlineProgramArgs,
    LocalProgramArgs,
    LocalWorkspace,
    LocalWorkspaceOptions,
    PreviewResult,
    Stack,
    UpResult,
} from "@pulumi/pulumi/automation";
import type { ResourceTransform } from "@pulumi/pulumi";
import * as fs from "fs";
import * as path from "path";
import { PROJECT, ROOT, StackName, TOOLS_BIN } from "./stacks";

export { PROJECT, ROOT, STACKS } from "./stacks";
export type { StackName } from "./stacks";

/**
 * The secrets a stack needs, each set by `pulumi config set --secret <key>` (README "Secrets"); in automation (the PR
 * workflow) each comes from the environment variable named here, which the workflow fills from a repository secret.
 */
export const SECRET_ENV: Readonly<Record<string, string>> = {
    oandaToken: "FX_OANDA_TOKEN",
    oandaAccountId: "FX_OANDA_ACCOUNT_ID",
    registryPassword: "FX_REGISTRY_PASSWORD",
    hfToken: "FX_HF_TOKEN",
    backupAccessKeyId: "FX_BACKUP_ACCESS_KEY_ID",
    backupSecretAccessKey: "FX_BACKUP_SECRET_ACCESS_KEY",
};

export interface PrepareOptions {
    stack: StackName;
    /** The project folder (Pulumi.yaml and the stack files): the checkout, or a throwaway copy in tests. */
    workDir: string;
    /** An inline program (engine tier); without it the project's own program runs through its language host. */
    program?: () => Promise<Record<string, unknown> | void>;
    /** Plain config set on top of the stack file (`pulumi config set <key> <value>`). */
    config?: Record<string, string>;
    /** Secret config (`pulumi config set --secret <key> <value>`). */
    secrets?: Record<string, string>;
    /** Environment of the CLI and its plugins (backend, passphrase, PULUMI_HOME, proxies). */
    envVars?: Record<string, string>;
}

/**
 * The project's own program (index.ts) as an inline program, evaluated afresh on every run. A module is evaluated
 * once per module registry, and a program served from that cache registers no resource (and reads its config as it
 * was): a second `up` in the same process would delete the whole stack. Under jest each run loads the project and the
 * resource SDKs in a registry of their own, with @pulumi/pulumi itself (and the `runtime` modules they import) shared: the engine's
 * connection and the messages sent on it must come from one copy of its protocol classes. `transform` is registered
 * as a stack transform of the run. Outside jest a second run in one process is refused.
 */
export function projectProgram(transform?: ResourceTransform): () => Promise<Record<string, unknown>> {
    let runs = 0;
    return async () => {
        runs += 1;
        const shared = ["@pulumi/pulumi", "@pulumi/pulumi/runtime", "@pulumi/pulumi/runtime/config"].map((m) => [
            require.resolve(m),
            require(m),
        ]);
        const sdk = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
        if (transform) sdk.runtime.registerResourceTransform(transform);
        let outputs: Record<string, unknown> = {};
        const load = async () => {
            outputs = { ...(await import(path.join(ROOT, "index.ts"))) };
        };
        if (typeof jest !== "undefined") {
            await jest.isolateModulesAsync(async () => {
                for (const [file, module] of shared) jest.doMock(file, () => module);
                await load();
            });
        } else if (runs === 1) await load();
        else
            throw new Error(
                "outside jest the project's program runs once per process: a second run would register nothing",
            );
        return outputs;
    };
}

/** Selects the stack, creating it when missing (`pulumi stack init`), then sets its config and secrets. */
export async function prepareStack(opts: PrepareOptions): Promise<Stack> {
    const wsOpts: LocalWorkspaceOptions = { workDir: opts.workDir, envVars: opts.envVars };
    const stack = opts.program
        ? await LocalWorkspace.createOrSelectStack(
              { stackName: opts.stack, projectName: PROJECT, program: opts.program } as InlineProgramArgs,
              wsOpts,
          )
        : await LocalWorkspace.createOrSelectStack(
              { stackName: opts.stack, workDir: opts.workDir } as LocalProgramArgs,
              wsOpts,
          );
    const entries = [
        ...Object.entries(opts.config ?? {}).map(([k, v]) => [k, { value: v, secret: false }] as const),
        ...Object.entries(opts.secrets ?? {}).map(([k, v]) => [k, { value: v, secret: true }] as const),
    ];
    for (const [key, value] of entries) await stack.setConfig(key, value);
    return stack;
}

/** The environment that carries `secrets` (secret config key -> value), as the PR workflow sets it: SECRET_ENV's names. */
export function secretsToEnv(secrets: Readonly<Record<string, string>>): Record<string, string> {
    return Object.fromEntries(
        Object.entries(secrets).map(([key, value]) => {
            const variable = SECRET_ENV[key];
            if (!variable)
                throw new Error(`${key} is not a secret config key of SECRET_ENV (${Object.keys(SECRET_ENV)})`);
            return [variable, value];
        }),
    );
}

/** Secrets named in SECRET_ENV whose environment variable is set (the inverse of secretsToEnv). */
export function secretsFromEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, variable] of Object.entries(SECRET_ENV)) {
        const value = env[variable];
        if (value) out[key] = value;
    }
    return out;
}

export interface PreviewSummary {
    result: PreviewResult;
    /** URN -> planned operation (create, update, same, ...), from the engine's own events. */
    steps: Map<string, string>;
}

/** `pulumi preview`, collecting every planned step; the engine's own output goes to `onOutput`. */
export async function preview(
    stack: Stack,
    opts: { onOutput?: (s: string) => void; policyPacks?: string[]; policyPackConfigs?: string[] } = {},
): Promise<PreviewSummary> {
    const steps = new Map<string, string>();
    const onEvent = (e: EngineEvent) => {
        const m = e.resourcePreEvent?.metadata;
        if (m) steps.set(m.urn, m.op);
    };
    const result = await stack.preview({
        color: "never",
        onOutput: opts.onOutput,
        onEvent,
        policyPacks: opts.policyPacks,
        policyPackConfigs: opts.policyPackConfigs,
    });
    return { result, steps };
}

/** What `up` or `destroy` did: the engine's result and every event it sent, in its own order (`sequence`). */
export interface UpdateRun<R> {
    result: R;
    events: EngineEvent[];
}

type UpdateOptions = { color: "never"; onOutput?: (s: string) => void; onEvent: (e: EngineEvent) => void };

/** Runs an update with every engine event recorded; output goes to `onOutput`. */
async function recorded<R>(
    update: (o: UpdateOptions) => Promise<R>,
    onOutput?: (s: string) => void,
): Promise<UpdateRun<R>> {
    const events: EngineEvent[] = [];
    const result = await update({ color: "never", onOutput, onEvent: (e) => events.push(e) });
    return { result, events };
}

/** `pulumi up` (the Automation API runs it `--yes --skip-preview`), recording every engine event. */
export function up(stack: Stack, opts: { onOutput?: (s: string) => void } = {}): Promise<UpdateRun<UpResult>> {
    return recorded((o) => stack.up(o), opts.onOutput);
}

/** `pulumi destroy`, recording every engine event. */
export function destroy(
    stack: Stack,
    opts: { onOutput?: (s: string) => void } = {},
): Promise<UpdateRun<DestroyResult>> {
    return recorded((o) => stack.destroy(o), opts.onOutput);
}

/**
 * The environment the engine tiers give the CLI and its plugins: the caller's, less every FX_* secret variable, with
 * its own PULUMI_HOME and passphrase, no plugin download and no way off the machine (plugin and chart downloads would
 * go to a closed port), the built tools first on PATH.
 */
export function offlineEngineEnv(pulumiHome: string, passphrase: string): Record<string, string> {
    const env = Object.fromEntries(
        Object.entries(process.env).filter(
            (e): e is [string, string] => e[1] !== undefined && !Object.values(SECRET_ENV).includes(e[0]),
        ),
    );
    return {
        ...env,
        PULUMI_HOME: pulumiHome,
        PULUMI_CONFIG_PASSPHRASE: passphrase,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        HTTP_PROXY: "http://127.0.0.1:9",
        HTTPS_PROXY: "http://127.0.0.1:9",
        NO_PROXY: "127.0.0.1,localhost",
        PATH: [TOOLS_BIN, process.env.PATH].join(path.delimiter),
    };
}

/** A project folder laid out as a user's checkout, made in `parent`: its own copies of the stack files, the rest linked. */
export function projectCopy(parent: string): string {
    const dir = fs.mkdtempSync(path.join(parent, "project-"));
    for (const entry of fs.readdirSync(ROOT)) {
        if (entry === ".git" || entry === "out") continue;
        if (/^Pulumi(\.[a-z]+)?\.yaml$/.test(entry)) fs.copyFileSync(path.join(ROOT, entry), path.join(dir, entry));
        else fs.symlinkSync(path.join(ROOT, entry), path.join(dir, entry));
    }
    return dir;
}

/** The type token of a URN (`urn:pulumi:stack::project::parent$type::name` -> type). */
export function urnType(urn: string): string {
    return urn.split("::")[2].split("$").pop()!;
}

export function urnName(urn: string): string {
    return urn.split("::").slice(3).join("::");
}
