import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import type { StackConfig } from "./types";
import { ConfigValidationError, RawConfig, validate } from "./validate";

/**
 * The only module that reads Pulumi's config: it hands every value the engine passed to `validate` (config/validate.ts,
 * which knows nothing of the engine) and turns its answer into the program's: the typed config, its warnings logged,
 * or one error listing every problem before any resource is declared.
 */

/**
 * Whether the engine passed this key as a secret (`pulumi config set --secret`). The SDK keeps the check internal;
 * without it every unknown key's value is treated as secret, so a misspelt secret is never printed.
 */
function isSecretConfig(fullKey: string): boolean {
    const check = (runtimeConfig as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
    return check ? check(fullKey) : true;
}

/** The stack's config as the engine passed it. */
export function readRawConfig(): RawConfig {
    const values = pulumi.runtime.allConfig();
    return {
        project: pulumi.getProject(),
        stack: pulumi.getStack(),
        values,
        secrets: Object.keys(values).filter(isSecretConfig),
    };
}

/** Reads and validates the stack configuration; throws ConfigValidationError listing every problem. */
export function loadConfig(): StackConfig {
    const { config, problems, warnings } = validate(readRawConfig());
    if (!config) throw new ConfigValidationError(pulumi.getStack(), problems);
    for (const w of warnings) pulumi.log.warn(w);
    return config;
}
