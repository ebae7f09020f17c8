import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

/** The project's root, where Pulumi.yaml and config/ live. */
export const PROJECT_ROOT = path.resolve(__dirname, "..");

export interface KeyDecl {
    readonly type?: string;
    readonly default?: unknown;
    readonly description?: string;
}
/** The config keys Pulumi.yaml declares in the project's own namespace, with their defaults. */
export const DECLARED: Readonly<Record<string, KeyDecl>> = Object.fromEntries(
    Object.entries<KeyDecl>(parse(fs.readFileSync(path.join(PROJECT_ROOT, "Pulumi.yaml"), "utf8")).config).filter(
        ([key]) => !key.includes(":"),
    ),
);

export interface SecretDecl {
    readonly neededWhen: string;
    readonly description: string;
}
/** The secret keys (config/secrets.yaml): not declared in Pulumi.yaml, whose CLI would require every one of them. */
export const SECRET_KEYS: Readonly<Record<string, SecretDecl>> = parse(
    fs.readFileSync(path.join(PROJECT_ROOT, "config/secrets.yaml"), "utf8"),
);
