/**
 * What the docker stand-in (provider.ts) does for a `docker:index/image:Image` on create, as the real
 * `pulumi-resource-docker` Image does: a BuildKit build of the image's Dockerfile and context with its target platform,
 * target stage and build args, a push of its tag to the registry, and the pushed manifest's repo digest as
 * `repoDigest` (`<repository>@sha256:<hex>`), so the workloads reference exactly what was built. A failed build fails
 * the resource with the image, the step that failed and the build's own error.
 *
 * It drives the Docker engine DOCKER_HOST names with Debian's docker client (tools/docker.ts DOCKER_CLI), which builds
 * with BuildKit from DOCKER_BUILDKIT=1 alone.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DOCKER_CLI } from "../docker";

export interface ImageInputs {
    imageName: string;
    build?: {
        context?: string;
        dockerfile?: string;
        platform?: string;
        target?: string;
        network?: string;
        addHosts?: string[];
        args?: Record<string, string>;
        builderVersion?: string;
    };
    registry?: { server?: string; username?: string; password?: string };
    skipPush?: boolean;
}

export interface BuiltImage {
    repoDigest: string;
    imageId: string;
    registryServer: string;
    /** Seconds the build and the push took. */
    buildSeconds: number;
    pushSeconds: number;
}

/** Runs the docker client; resolves with its exit code and combined output. */
function docker(
    args: string[],
    env: NodeJS.ProcessEnv,
    input?: string,
): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(DOCKER_CLI, args, { env, stdio: ["pipe", "pipe", "pipe"] });
        const chunks: Buffer[] = [];
        child.stdout.on("data", (c) => chunks.push(c));
        child.stderr.on("data", (c) => chunks.push(c));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, output: Buffer.concat(chunks).toString("utf8") }));
        child.stdin.end(input ?? "");
    });
}

/** The `docker build` arguments for an Image's inputs; relative paths are from the program's folder (`cwd`). */
export function buildArgs(inputs: ImageInputs, cwd: string): string[] {
    const b = inputs.build ?? {};
    const context = path.resolve(cwd, b.context ?? ".");
    const dockerfile = path.resolve(cwd, b.dockerfile ?? path.join(context, "Dockerfile"));
    const args = ["build", "--progress=plain", "--file", dockerfile, "--tag", inputs.imageName];
    if (b.platform) args.push("--platform", b.platform);
    if (b.target) args.push("--target", b.target);
    if (b.network) args.push("--network", b.network);
    for (const h of b.addHosts ?? []) args.push("--add-host", h);
    for (const k of Object.keys(b.args ?? {}).sort()) args.push("--build-arg", `${k}=${b.args![k]}`);
    args.push(context);
    return args;
}

/**
 * The step a failed BuildKit build (`--progress=plain`) stopped at and its error: the vertex whose `#N ERROR` line
 * came first, named as BuildKit names it (`[build 5/9] COPY missing /x`), and the error text.
 */
export function failedStep(output: string): { step: string; error: string } {
    const lines = output.split("\n");
    const names = new Map<string, string>();
    for (const l of lines) {
        const m = /^#(\d+) (\[.*)$/.exec(l);
        if (m && !names.has(m[1])) names.set(m[1], m[2].trim());
    }
    const err = lines.map((l) => /^#(\d+) ERROR: (.*)$/.exec(l)).find((m) => m);
    const solve = lines.find((l) => /failed to solve|error: /i.test(l))?.trim();
    if (err) return { step: names.get(err[1]) ?? `#${err[1]}`, error: err[2].trim() };
    return { step: "(no step: the build did not start)", error: solve ?? lines.filter(Boolean).slice(-1)[0] ?? "" };
}

/** The registry host of an image name (`host[:port]/repo:tag`), or Docker Hub's. */
export function registryOf(imageName: string): string {
    const first = imageName.split("/")[0];
    return imageName.includes("/") && /[.:]|^localhost$/.test(first) ? first : "docker.io";
}

/** The repository of an image name, without its tag or digest. */
export function repositoryOf(imageName: string): string {
    const noDigest = imageName.split("@")[0];
    const lastSlash = noDigest.lastIndexOf("/");
    const colon = noDigest.indexOf(":", lastSlash + 1);
    return colon === -1 ? noDigest : noDigest.slice(0, colon);
}

export async function buildAndPush(inputs: ImageInputs, cwd: string, env: NodeJS.ProcessEnv): Promise<BuiltImage> {
    const imageName = inputs.imageName;
    if (!env.DOCKER_HOST) {
        throw new Error(`docker stand-in: no Docker engine for ${imageName}: DOCKER_HOST is not set`);
    }
    // The client's own config (credentials from `docker login`) stays in a throwaway folder, never the user's.
    const config = fs.mkdtempSync(path.join(os.tmpdir(), "fx-docker-config-"));
    const clientEnv = { ...env, DOCKER_BUILDKIT: "1", DOCKER_CONFIG: config };
    try {
        const t0 = Date.now();
        const built = await docker(buildArgs(inputs, cwd), clientEnv);
        if (built.code !== 0) {
            const { step, error } = failedStep(built.output);
            const lastLines = built.output.trimEnd().split("\n").slice(-40).join("\n");
            throw new Error(
                `docker build of ${imageName} failed at step ${step}: ${error}\n--- last lines of the build ---\n${lastLines}`,
            );
        }
        const buildSeconds = (Date.now() - t0) / 1000;
        const idRun = await docker(["image", "inspect", "--format", "{{.Id}}", imageName], clientEnv);
        const imageId = idRun.output.trim();
        const server = inputs.registry?.server || registryOf(imageName);
        if (inputs.skipPush) {
            return { repoDigest: imageId, imageId, registryServer: server, buildSeconds, pushSeconds: 0 };
        }
        if (inputs.registry?.username && inputs.registry.password) {
            const login = await docker(
                ["login", server, "--username", inputs.registry.username, "--password-stdin"],
                clientEnv,
                inputs.registry.password,
            );
            if (login.code !== 0) throw new Error(`docker login ${server} failed: ${login.output.trim()}`);
        }
        const t1 = Date.now();
        const pushed = await docker(["push", imageName], clientEnv);
        // "<tag>: digest: sha256:<hex> size: <n>": the manifest digest the registry stored.
        const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.output)?.[1];
        if (pushed.code !== 0 || !digest) {
            throw new Error(
                `docker push of ${imageName} failed:\n${pushed.output.trimEnd().split("\n").slice(-20).join("\n")}`,
            );
        }
        return {
            repoDigest: `${repositoryOf(imageName)}@${digest}`,
            imageId,
            registryServer: server,
            buildSeconds,
            pushSeconds: (Date.now() - t1) / 1000,
        };
    } finally {
        fs.rmSync(config, { recursive: true, force: true });
    }
}
