import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";
import dockerignore from "@balena/dockerignore";

/** The seven images, keyed as workloads refer to them (docs/contracts.md). */
export const IMAGE_KEYS = [
    "base",
    "airflowScheduler",
    "airflowWebserver",
    "airflowWorker",
    "fastapi",
    "fingpt",
    "mlflow",
] as const;
export type ImageKey = (typeof IMAGE_KEYS)[number];

interface ImageSpec {
    /** Repository name under the registry. */
    readonly repository: string;
    /** File in dockerfiles/. */
    readonly dockerfile: string;
    /** Built FROM fx-base: gets BASE_IMAGE = the base's digest and waits for it. */
    readonly fromBase: boolean;
    /** The version build arg it takes from stack config. */
    readonly version?: "AIRFLOW_VERSION" | "MLFLOW_VERSION";
}

export const IMAGE_SPECS: Readonly<Record<ImageKey, ImageSpec>> = {
    base: { repository: "fx-base", dockerfile: "Dockerfile.base", fromBase: false },
    airflowScheduler: {
        repository: "fx-airflow-scheduler",
        dockerfile: "Dockerfile.airflow-scheduler",
        fromBase: false,
        version: "AIRFLOW_VERSION",
    },
    airflowWebserver: {
        repository: "fx-airflow-webserver",
        dockerfile: "Dockerfile.airflow-webserver",
        fromBase: false,
        version: "AIRFLOW_VERSION",
    },
    airflowWorker: {
        repository: "fx-airflow-worker",
        dockerfile: "Dockerfile.airflow-worker",
        fromBase: false,
        version: "AIRFLOW_VERSION",
    },
    fastapi: { repository: "fx-fastapi", dockerfile: "Dockerfile.fastapi", fromBase: true },
    fingpt: { repository: "fx-fingpt", dockerfile: "Dockerfile.fingpt", fromBase: false },
    mlflow: { repository: "fx-mlflow", dockerfile: "Dockerfile.mlflow", fromBase: true, version: "MLFLOW_VERSION" },
};

/**
 * The files Docker would send as the build context, as sorted POSIX paths relative to `contextDir`: every regular
 * file and symlink not excluded by the context's .dockerignore (matched with @balena/dockerignore, Docker's rules).
 */
export function contextFiles(contextDir: string): string[] {
    const ignoreFile = path.join(contextDir, ".dockerignore");
    const patterns = fs.existsSync(ignoreFile) ? fs.readFileSync(ignoreFile, "utf8").split(/\r?\n/) : [];
    const ig = dockerignore().add(patterns);
    // An excluded directory can only be pruned when no `!` pattern could re-include something inside it.
    const canPrune = !patterns.some((p) => p.trim().startsWith("!"));
    const files: string[] = [];
    const walk = (rel: string) => {
        for (const entry of fs.readdirSync(path.join(contextDir, rel), { withFileTypes: true })) {
            const child = rel ? `${rel}/${entry.name}` : entry.name;
            if (entry.isDirectory()) {
                if (!(canPrune && ig.ignores(child))) walk(child);
            } else if ((entry.isFile() || entry.isSymbolicLink()) && !ig.ignores(child)) {
                files.push(child);
            }
        }
    };
    walk("");
    return files.sort();
}

/** sha256 over the context's files (path, executable bit, content; symlinks by target), in sorted order. */
export function contextDigest(contextDir: string): string {
    const h = crypto.createHash("sha256");
    for (const rel of contextFiles(contextDir)) {
        const abs = path.join(contextDir, rel);
        const st = fs.lstatSync(abs);
        const content = st.isSymbolicLink() ? Buffer.from(`symlink:${fs.readlinkSync(abs)}`) : fs.readFileSync(abs);
        h.update(`${rel}\0${st.mode & 0o111 ? "x" : "-"}\0${content.length}\0`);
        h.update(content);
    }
    return h.digest("hex");
}

/**
 * The content hash of one image: its build context, its Dockerfile and its build args (sorted). The tag is the
 * first 20 hex digits, so an unchanged image keeps its tag and is neither rebuilt nor rolled out again.
 */
export function imageHash(contextHash: string, dockerfileText: string, buildArgs: Record<string, string>): string {
    const args = Object.keys(buildArgs)
        .sort()
        .map((k) => [k, buildArgs[k]]);
    return crypto
        .createHash("sha256")
        .update(`context\0${contextHash}\0dockerfile\0${dockerfileText}\0args\0${JSON.stringify(args)}`)
        .digest("hex");
}

export interface ImagesArgs {
    /** Build context: the application checkout (app/ or your own pipeline with the same layout). */
    context: string;
    /** Directory holding the seven Dockerfiles; defaults to `dockerfiles`. Relative paths are from the project. */
    dockerfilesDir?: string;
    /** Where to push: `host[:port][/path]`; credentials only where the registry needs them. */
    registry: {
        server: string;
        username?: string;
        /** A secret Output; it reaches the provider only as a secret. */
        password?: pulumi.Output<string>;
    };
    /** Target platform, e.g. linux/amd64. */
    platform: string;
    /**
     * The images to build, in any order (fx-base always comes first when an image built FROM it is included); default
     * all seven. A stack builds only what it deploys.
     */
    include?: readonly ImageKey[];
    /** Releases of the version-selected images. */
    versions: { airflow: string; mlflow: string };
    /** Value of the org.opencontainers.image.source label (the repository URL), if known. */
    sourceUrl?: string;
}

/**
 * Builds the pipeline's seven images with `@pulumi/docker` and pushes them to the stack's registry. Tags are
 * content hashes; workloads get digest-pinned references (`repo@sha256:...`). fx-base is built first and its
 * digest is the BASE_IMAGE build arg of the images built FROM it, so a base change rebuilds them.
 * Nothing is built on preview.
 */
export class Images extends pulumi.ComponentResource {
    /** Digest-pinned reference of every image built, for the workloads. */
    public readonly refs: Readonly<Partial<Record<ImageKey, pulumi.Output<string>>>>;
    /** Content tag of every image built (`ctx-<hash>`), known at preview time. */
    public readonly tags: Readonly<Partial<Record<ImageKey, string>>>;

    constructor(name: string, args: ImagesArgs, opts?: pulumi.ComponentResourceOptions) {
        super(
            "fx:platform:Images",
            name,
            {},
            { ...opts, aliases: [{ type: "fx:images:Images" }, ...(opts?.aliases ?? [])] },
        );

        // A folder with a .dockerignore: config (appContext) checks both before anything is declared.
        const contextDir = path.resolve(args.context);
        const dockerfilesDir = args.dockerfilesDir ?? "dockerfiles";
        const contextHash = contextDigest(contextDir);

        // The registry host is what credentials are for; the path (if any) belongs to the repository name.
        const server = args.registry.server;
        const registry: docker.types.input.Registry = args.registry.username
            ? {
                  server: server.split("/")[0],
                  username: args.registry.username,
                  password: args.registry.password ? pulumi.secret(args.registry.password) : undefined,
              }
            : { server: server.split("/")[0] };

        const include = new Set(args.include ?? IMAGE_KEYS);
        const unknown = [...include].filter((k) => !IMAGE_KEYS.includes(k));
        if (unknown.length > 0) {
            throw new pulumi.ResourceError(
                `Images: unknown image ${unknown.join(", ")}; the images are ${IMAGE_KEYS.join(", ")}`,
                this,
            );
        }
        if (IMAGE_KEYS.some((k) => include.has(k) && IMAGE_SPECS[k].fromBase)) include.add("base");

        const refs: Partial<Record<ImageKey, pulumi.Output<string>>> = {};
        const tags: Partial<Record<ImageKey, string>> = {};
        let base: docker.Image | undefined;
        for (const key of IMAGE_KEYS.filter((k) => include.has(k))) {
            const spec = IMAGE_SPECS[key];
            const dockerfile = path.posix.join(dockerfilesDir.split(path.sep).join("/"), spec.dockerfile);
            const dockerfileText = fs.readFileSync(path.resolve(dockerfile), "utf8");

            const versionArgs: Record<string, string> = {};
            if (spec.version === "AIRFLOW_VERSION") versionArgs.AIRFLOW_VERSION = args.versions.airflow;
            if (spec.version === "MLFLOW_VERSION") versionArgs.MLFLOW_VERSION = args.versions.mlflow;
            // Dependents hash the base's content tag (known now) and receive its digest (known after the push).
            if (spec.fromBase && (!base || !tags.base)) {
                throw new Error(`Images: ${key} is built FROM fx-base, which must come first`);
            }
            const hashed = spec.fromBase ? { ...versionArgs, BASE_IMAGE_TAG: tags.base! } : versionArgs;
            const hash = imageHash(contextHash, dockerfileText, hashed);
            const tag = `ctx-${hash.slice(0, 20)}`;
            tags[key] = tag;

            const buildArgs: Record<string, pulumi.Input<string>> = {
                ...versionArgs,
                OCI_VERSION: tag,
                OCI_REVISION: hash,
                ...(args.sourceUrl ? { OCI_SOURCE: args.sourceUrl } : {}),
            };
            if (spec.fromBase) buildArgs.BASE_IMAGE = base!.repoDigest;

            const image = new docker.Image(
                `${name}-${spec.repository}`,
                {
                    imageName: `${server}/${spec.repository}:${tag}`,
                    build: {
                        context: args.context,
                        dockerfile,
                        platform: args.platform,
                        args: buildArgs,
                        builderVersion: docker.types.enums.BuilderVersion.BuilderBuildKit,
                    },
                    buildOnPreview: false,
                    skipPush: false,
                    registry,
                },
                { parent: this, dependsOn: spec.fromBase && base ? [base] : [] },
            );
            if (key === "base") base = image;
            refs[key] = image.repoDigest;
        }

        this.refs = refs;
        this.tags = tags;
        this.registerOutputs({ refs: this.refs, tags: this.tags });
    }

    /** The digest-pinned reference of an image this stack builds; asking for one it does not build is a bug. */
    ref(key: ImageKey): pulumi.Output<string> {
        const ref = this.refs[key];
        if (!ref) {
            throw new Error(
                `Images: ${key} is not built on this stack (built: ${Object.keys(this.refs).join(", ")}); add it to the Images include list where it is deployed`,
            );
        }
        return ref;
    }
}
