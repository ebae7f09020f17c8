/**
 * Static checks of a Dockerfile, on the syntax tree from `dockerfile-ast` (the parser behind the VS Code Docker
 * extension), so continuation lines, JSON forms, flags and stages are read as Docker reads them.
 * Shell commands inside RUN are split into words; nothing here pattern-matches raw Dockerfile text.
 */
import * as fs from "fs";
import * as path from "path";
import dockerignore from "@balena/dockerignore";
import { DockerfileParser, Instruction, Copy, From, Arg, Env, Label, Dockerfile } from "dockerfile-ast";

export type RuleId =
    | "pinned-base"
    | "non-root-user"
    | "no-compilers-in-runtime"
    | "no-secrets-in-build-config"
    | "copy-sources-exist"
    | "exposed-ports"
    | "deps-before-code"
    | "oci-labels";

export interface Violation {
    rule: RuleId;
    /** 1-based line of the offending instruction. */
    line: number;
    message: string;
}

export interface CheckOptions {
    /** Build context directory: COPY sources must exist there and not be excluded by its .dockerignore. */
    context: string;
    /** Ports the image contract (docs/contracts.md) says the image serves; [] for none. */
    expectedPorts: readonly number[];
}

/** A build stage: its FROM and the instructions up to the next FROM. */
interface Stage {
    from: From;
    name?: string;
    instructions: Instruction[];
}

const COMPILERS = new Set(["gcc", "g++", "build-essential", "git", "clang", "cc", "c++", "make"]);
const SECRET_NAME = /(TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL)/i;
const REQUIRED_LABELS = [
    "org.opencontainers.image.source",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.version",
];
// A tag that names an exact release: it contains x.y.z (python:3.11.18-slim-bookworm, apache/airflow:3.3.2-python3.11).
const EXACT_TAG = /(^|[^0-9.])\d+\.\d+\.\d+([^0-9.]|$)/;

function line(i: Instruction): number {
    return i.getRange().start.line + 1;
}

function stagesOf(df: Dockerfile): Stage[] {
    const stages: Stage[] = [];
    for (const ins of df.getInstructions()) {
        if (ins.getKeyword() === "FROM") {
            const from = ins as From;
            stages.push({ from, name: from.getBuildStage() ?? undefined, instructions: [] });
        } else if (stages.length > 0) {
            stages[stages.length - 1].instructions.push(ins);
        }
    }
    return stages;
}

/** Global ARG defaults (before the first FROM), the only variables a FROM may use. */
function globalArgs(df: Dockerfile): Map<string, string | null> {
    const args = new Map<string, string | null>();
    for (const a of df.getInitialARGs()) {
        const p = a.getProperty();
        if (p) args.set(p.getName(), p.getValue());
    }
    return args;
}

function substitute(text: string, vars: Map<string, string | null>): { value: string; unresolved: string[] } {
    const unresolved: string[] = [];
    const value = text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a, b) => {
        const name = a ?? b;
        const v = vars.get(name);
        if (v === undefined || v === null || v === "") {
            unresolved.push(name);
            return "";
        }
        return v;
    });
    return { value, unresolved };
}

/** Reads an image reference with the same parser, as the image of a one-line Dockerfile. */
function parseImageRef(ref: string): { name: string | null; tag: string | null; digest: string | null } {
    const from = DockerfileParser.parse(`FROM ${ref}`).getFROMs()[0];
    return {
        name: from?.getImageName() ?? null,
        tag: from?.getImageTag() ?? null,
        digest: from?.getImageDigest() ?? null,
    };
}

function checkImageRef(ref: string, where: string): string | undefined {
    const { name, tag, digest } = parseImageRef(ref);
    if (!name) return `${where} has no image name`;
    if (digest) return /^sha256:[0-9a-f]{64}$/.test(digest) ? undefined : `${where} has a malformed digest ${digest}`;
    if (!tag) return `${where} '${ref}' has no tag: Docker would pull :latest; use an exact tag or a digest`;
    if (tag === "latest") return `${where} '${ref}' uses :latest; use an exact tag or a digest`;
    if (!EXACT_TAG.test(tag)) {
        return `${where} '${ref}' has the floating tag '${tag}'; use an exact x.y.z tag or a digest`;
    }
    return undefined;
}

function pinnedBase(df: Dockerfile, stages: Stage[]): Violation[] {
    const out: Violation[] = [];
    const args = globalArgs(df);
    const stageNames = new Set<string>();
    for (const stage of stages) {
        const raw = stage.from.getImage() ?? "";
        if (stageNames.has(raw)) {
            // FROM an earlier stage of this file.
        } else if (/^\$\{?BASE_IMAGE\}?$/.test(raw)) {
            // The fx-base image: the Images component binds it to a digest. A default must itself be a digest.
            const def = args.get("BASE_IMAGE");
            if (def && !parseImageRef(def).digest) {
                out.push({
                    rule: "pinned-base",
                    line: line(stage.from),
                    message: `ARG BASE_IMAGE default '${def}' is not a digest reference (repo@sha256:...)`,
                });
            }
        } else {
            const { value, unresolved } = substitute(raw, args);
            const problem =
                unresolved.length > 0
                    ? `FROM '${raw}' uses ${unresolved.join(", ")} without a pinned default in a global ARG`
                    : checkImageRef(value, `FROM`);
            if (problem) out.push({ rule: "pinned-base", line: line(stage.from), message: problem });
        }
        if (stage.name) stageNames.add(stage.name);
        // COPY --from=<image> pulls an image too.
        for (const ins of stage.instructions) {
            if (ins.getKeyword() !== "COPY") continue;
            const src = (ins as Copy).getFromFlag()?.getValue();
            if (!src || stageNames.has(src) || /^\d+$/.test(src)) continue;
            const problem = checkImageRef(substitute(src, args).value, "COPY --from");
            if (problem) out.push({ rule: "pinned-base", line: line(ins), message: problem });
        }
    }
    return out;
}

function nonRootUser(final: Stage): Violation[] {
    const users = final.instructions.filter((i) => i.getKeyword() === "USER");
    if (users.length === 0) {
        return [
            {
                rule: "non-root-user",
                line: line(final.from),
                message: "the final stage sets no USER: it runs as its base image's user (often root)",
            },
        ];
    }
    const last = users[users.length - 1];
    const user = (last.getArgumentsContent() ?? "").split(":")[0];
    if (user === "root" || user === "0") {
        return [{ rule: "non-root-user", line: line(last), message: `the final USER is root ('${user}')` }];
    }
    if (!/^[1-9]\d*$/.test(user)) {
        return [
            {
                rule: "non-root-user",
                line: line(last),
                message: `the final USER '${user}' is a name: use the numeric uid so Kubernetes runAsNonRoot can verify it`,
            },
        ];
    }
    return [];
}

/** The words of a RUN's shell command, split on whitespace and shell operators. */
function runWords(ins: Instruction): string[] {
    const text = ins.getArgumentsContent() ?? "";
    return text
        .replace(/\\\r?\n/g, " ")
        .split(/[\s;&|()]+/)
        .map((w) => w.replace(/^["']|["']$/g, ""))
        .filter((w) => w.length > 0);
}

/** Packages named by package-manager install commands in a RUN (apt-get/apt/apk/dnf/yum/microdnf). */
function installedPackages(words: string[]): string[] {
    const pkgs: string[] = [];
    for (let i = 0; i < words.length; i++) {
        const w = words[i];
        const next = words[i + 1];
        const installer =
            (["apt-get", "apt", "dnf", "yum", "microdnf"].includes(w) && next === "install") ||
            (w === "apk" && next === "add");
        if (!installer) continue;
        for (let j = i + 2; j < words.length; j++) {
            const p = words[j];
            if (["apt-get", "apt", "apk", "dnf", "yum", "rm", "pip", "uv"].includes(p)) break;
            if (!p.startsWith("-")) pkgs.push(p.split("=")[0]);
        }
    }
    return pkgs;
}

function noCompilers(final: Stage): Violation[] {
    const out: Violation[] = [];
    for (const ins of final.instructions) {
        if (ins.getKeyword() !== "RUN") continue;
        for (const p of installedPackages(runWords(ins))) {
            if (COMPILERS.has(p) || /^(gcc|g\+\+|clang)-\d+$/.test(p)) {
                out.push({
                    rule: "no-compilers-in-runtime",
                    line: line(ins),
                    message: `the runtime stage installs '${p}': compile in a build stage and copy the result`,
                });
            }
        }
    }
    return out;
}

function noSecrets(df: Dockerfile): Violation[] {
    const out: Violation[] = [];
    for (const ins of df.getInstructions()) {
        const kw = ins.getKeyword();
        if (kw === "ARG") {
            const p = (ins as Arg).getProperty();
            if (p && SECRET_NAME.test(p.getName())) {
                out.push({
                    rule: "no-secrets-in-build-config",
                    line: line(ins),
                    message: `ARG ${p.getName()} looks like a secret: build args are recorded in the image history; use RUN --mount=type=secret`,
                });
            }
        } else if (kw === "ENV") {
            for (const p of (ins as Env).getProperties()) {
                const value = p.getValue() ?? "";
                if (SECRET_NAME.test(p.getName()) && value !== "" && !/^\$\{?[A-Za-z_]/.test(value)) {
                    out.push({
                        rule: "no-secrets-in-build-config",
                        line: line(ins),
                        message: `ENV ${p.getName()} holds a literal value: secrets come from Kubernetes Secrets at run time`,
                    });
                }
            }
        }
    }
    return out;
}

/** Sources of a COPY/ADD from the build context (not --from), as written. */
function contextSources(ins: Instruction): string[] {
    if (ins.getKeyword() !== "COPY" && ins.getKeyword() !== "ADD") return [];
    if (ins.getKeyword() === "COPY" && (ins as Copy).getFromFlag()) return [];
    const args = ins.getArguments().map((a) => a.getValue());
    return args.slice(0, -1);
}

function copySourcesExist(df: Dockerfile, context: string): Violation[] {
    const out: Violation[] = [];
    const ignoreFile = path.join(context, ".dockerignore");
    const ignored = dockerignore().add(
        fs.existsSync(ignoreFile) ? fs.readFileSync(ignoreFile, "utf8").split(/\r?\n/) : [],
    );
    for (const ins of df.getInstructions()) {
        for (const src of contextSources(ins)) {
            const rel = path.posix.normalize(src.replace(/^\/+/, ""));
            if (/[*?[]/.test(rel)) {
                out.push({
                    rule: "copy-sources-exist",
                    line: line(ins),
                    message: `'${src}' is a wildcard: name the path`,
                });
            } else if (rel === ".." || rel.startsWith("../")) {
                out.push({
                    rule: "copy-sources-exist",
                    line: line(ins),
                    message: `'${src}' is outside the build context`,
                });
            } else if (!fs.existsSync(path.join(context, rel))) {
                out.push({
                    rule: "copy-sources-exist",
                    line: line(ins),
                    message: `'${src}' does not exist in the build context ${context}`,
                });
            } else if (rel !== "." && ignored.ignores(rel)) {
                out.push({
                    rule: "copy-sources-exist",
                    line: line(ins),
                    message: `'${src}' is excluded by ${ignoreFile}, so the build cannot see it`,
                });
            }
        }
    }
    return out;
}

function exposedPorts(final: Stage, expected: readonly number[]): Violation[] {
    const exposes = final.instructions.filter((i) => i.getKeyword() === "EXPOSE");
    const ports = exposes.flatMap((i) => i.getArguments().map((a) => Number(a.getValue().split("/")[0])));
    const want = [...expected].sort((a, b) => a - b);
    const got = [...new Set(ports)].sort((a, b) => a - b);
    if (JSON.stringify(want) === JSON.stringify(got)) return [];
    return [
        {
            rule: "exposed-ports",
            line: exposes.length > 0 ? line(exposes[0]) : line(final.from),
            message: `EXPOSE ${got.join(" ") || "(none)"} but the image contract says ${want.join(" ") || "(none)"}`,
        },
    ];
}

function isDependencyManifest(src: string): boolean {
    const rel = src.replace(/^\.?\/+/, "");
    return rel.startsWith("requirements/") || /(^|\/)(requirements|constraints)[^/]*\.txt$/.test(rel);
}

/** A RUN that installs or builds packages from a requirements file (pip/uv pip, install or wheel, with -r). */
function installsRequirements(ins: Instruction): boolean {
    if (ins.getKeyword() !== "RUN") return false;
    const words = runWords(ins);
    const usesPip = words.some((w, i) => w === "pip" || w === "pip3" || (w === "uv" && words[i + 1] === "pip"));
    const verb = words.some((w) => w === "install" || w === "wheel");
    const fromFile = words.some((w) => w === "-r" || w.startsWith("--requirement"));
    return usesPip && verb && fromFile;
}

function depsBeforeCode(stages: Stage[]): Violation[] {
    const out: Violation[] = [];
    for (const stage of stages) {
        let firstCode: Instruction | undefined;
        for (const ins of stage.instructions) {
            const sources = contextSources(ins);
            if (!firstCode && sources.length > 0 && !sources.every(isDependencyManifest)) firstCode = ins;
            if (firstCode && installsRequirements(ins)) {
                out.push({
                    rule: "deps-before-code",
                    line: line(ins),
                    message: `dependencies are installed after code is copied (line ${line(firstCode)}): every code change would reinstall them`,
                });
            }
        }
    }
    return out;
}

function ociLabels(final: Stage): Violation[] {
    const labels = new Map<string, string>();
    for (const ins of final.instructions) {
        if (ins.getKeyword() !== "LABEL") continue;
        for (const p of (ins as Label).getProperties()) labels.set(p.getName(), p.getValue() ?? "");
    }
    const out: Violation[] = [];
    for (const key of REQUIRED_LABELS) {
        const v = labels.get(key);
        if (v === undefined || !/\$\{?OCI_[A-Z]+\}?/.test(v)) {
            out.push({
                rule: "oci-labels",
                line: line(final.from),
                message: `the final stage lacks LABEL ${key} from a build arg (OCI_SOURCE, OCI_REVISION, OCI_VERSION)`,
            });
        }
    }
    return out;
}

/** Every violation of the house rules in one Dockerfile's text. */
export function checkDockerfile(text: string, opts: CheckOptions): Violation[] {
    const df = DockerfileParser.parse(text);
    const stages = stagesOf(df);
    if (stages.length === 0) return [{ rule: "pinned-base", line: 1, message: "no FROM instruction" }];
    const final = stages[stages.length - 1];
    return [
        ...pinnedBase(df, stages),
        ...nonRootUser(final),
        ...noCompilers(final),
        ...noSecrets(df),
        ...copySourcesExist(df, opts.context),
        ...exposedPorts(final, opts.expectedPorts),
        ...depsBeforeCode(stages),
        ...ociLabels(final),
    ];
}

/** Paths a Dockerfile copies from the build context, as written (for documentation and the contract test). */
export function copiedPaths(text: string): string[] {
    return DockerfileParser.parse(text).getInstructions().flatMap(contextSources);
}

/** ARG defaults declared before the first FROM. */
export function globalArgDefaults(text: string): Record<string, string | null> {
    return Object.fromEntries(globalArgs(DockerfileParser.parse(text)));
}
