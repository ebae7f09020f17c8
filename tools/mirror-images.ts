/**
 * The offline image mirror's STAND-IN images: every third-party image the dev stack's pods run (docs/airgap.md) that
 * can be had on these machines, built here under its exact upstream reference and pushed into the local registry at
 * the path the node's containerd resolves that reference to (tools/cluster.ts `mirrorHostsToml`: every upstream host
 * is served by the registry alone, `<host>/<path>:<tag>` as `<path>:<tag>`, Docker Hub's official images under
 * `library/`). No image registry is reachable from here, so:
 *
 * - the Go programs come from their own modules at the release's version (scripts/tools.sh builds them, static, with
 *   each module's own go.mod), in an image laid out as upstream's: the binary at upstream's path, its entrypoint,
 *   default command, user and working folder. FROM scratch with the /etc/passwd, /etc/group and /tmp a distroless base
 *   has (upstream's busybox or distroless base is not reachable: no shell, no CA bundle, no tzdata);
 * - CloudNativePG's Postgres operand and Redis are Debian's packages on a debootstrap minbase (tools/standin-images.ts
 *   makes it; the definitions are in tools/standins/images/{cnpg-postgresql,redis}).
 *
 * Each image is labelled `dev.fx-ml.stand-in=true` with what it stands in for and what it was built from, and with
 * `dev.fx-ml.stand-in.inputs`, a key of everything it is made of: a warm run finds the image built from the same
 * inputs and the registry holding it, and does nothing. `MIRROR_EXCEPTIONS` are the images that cannot be had here.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { DockerEngine, imageExists, inspectImage, pruneImages, pruneRegistry } from "./docker";
import { TOOLS_BIN } from "./stacks";
import {
    buildContext,
    DEBIAN,
    debianBase,
    debianBaseRef,
    DebianRoot,
    sha,
    STANDIN_DEFINITIONS,
} from "./standin-images";
import { registryOf } from "./standins/docker-build";

/** Debian trixie: CloudNativePG's `-trixie` operand, and the release with postgresql-17 (bookworm has 15). */
export const DEBIAN_TRIXIE: DebianRoot = { ...DEBIAN, suite: "trixie" };

const INPUTS_LABEL = "dev.fx-ml.stand-in.inputs";

/** A Go program's image: what scripts/tools.sh built, laid out as upstream's image. */
interface GoImage {
    kind: "go";
    reference: string;
    /** The Go module and the version scripts/tools.sh pins (its build folder is named with it). */
    module: string;
    version: string;
    /** The command built and the tool's name in scripts/tools.sh's bin folder. */
    command: string;
    program: string;
    /** Where upstream's image has the binary. */
    at: string;
    /** Symbolic links: path -> target. */
    links?: Record<string, string>;
    /** Files of the module's own source put where upstream's image has them: path in the image -> path in the module. */
    moduleFiles?: Record<string, string>;
    /** Folders owned by the image's user (upstream's chown), with their mode. */
    ownedDirs?: Record<string, number>;
    user: string;
    /** The numeric owner of `ownedDirs`. */
    owner?: string;
    workdir?: string;
    entrypoint: string[];
    cmd?: string[];
    expose?: string[];
    volumes?: string[];
    /** Besides the base: what differs from upstream's image. */
    versionDifference: string;
}

/** An image made from Debian packages by a definition folder (tools/standins/images/<definition>). */
interface DebianImage {
    kind: "debian";
    reference: string;
    definition: string;
    root: DebianRoot;
    args: Record<string, string>;
    /** The package whose Debian version is the image's (reported with the result). */
    package: string;
    builtFrom: string;
    versionDifference: string;
}

export type MirrorImageSpec = GoImage | DebianImage;

/** What distroless has and scratch lacks that these programs expect: users, groups, a writable /tmp. */
const PASSWD = ["root:x:0:0:root:/root:/sbin/nologin", "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
    "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin", ""].join("\n"); // prettier-ignore
const GROUP = ["root:x:0:", "nobody:x:65534:", "nonroot:x:65532:", ""].join("\n");
const NO_SHELL = "no busybox shell or CA bundle (upstream's base is quay.io/prometheus/busybox)";
const DISTROLESS_LESS = "no CA bundle or tzdata (upstream's base is distroless static)";

/** The images built, in build order (the small ones first). Versions: scripts/tools.sh pins the same. */
export const MIRROR_IMAGES: readonly MirrorImageSpec[] = [
    {
        kind: "go",
        reference: "ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0",
        module: "github.com/cloudnative-pg/cloudnative-pg",
        version: "v1.30.0",
        command: "cmd/manager",
        program: "cnpg-manager",
        // Upstream's Dockerfile: the binary as /operator/manager_<arch>, /manager a link to it (the path the operand's
        // bootstrap-controller init container runs: `/manager bootstrap /controller/manager` copies it into the pod).
        at: "/operator/manager_amd64",
        links: { "/manager": "operator/manager_amd64" },
        user: "65532:65532",
        workdir: "/",
        entrypoint: ["/manager"],
        versionDifference: `none in the program; ${DISTROLESS_LESS}`,
    },
    {
        kind: "go",
        reference: "quay.io/prometheus/prometheus:v3.14.0",
        module: "github.com/prometheus/prometheus",
        version: "v0.314.0",
        command: "cmd/prometheus",
        program: "prometheus",
        at: "/bin/prometheus",
        moduleFiles: {
            "/etc/prometheus/prometheus.yml": "documentation/examples/prometheus.yml",
            "/LICENSE": "LICENSE",
            "/NOTICE": "NOTICE",
        },
        ownedDirs: { "/etc/prometheus": 0o755, "/prometheus": 0o775 },
        user: "nobody",
        owner: "65534:65534",
        workdir: "/prometheus",
        entrypoint: ["/bin/prometheus"],
        cmd: ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
        expose: ["9090"],
        volumes: ["/prometheus"],
        versionDifference:
            "built with Kubernetes service discovery only (tags remove_all_sd,enable_kubernetes_sd: the dev stack's " +
            "scrape configs use no other); no web UI assets (the release embeds the built React UI, which needs " +
            `npm: the API, /-/ready and /-/healthy answer, the UI pages answer 500); no promtool; ${NO_SHELL}`,
    },
    {
        kind: "go",
        reference: "quay.io/prometheus/alertmanager:v0.34.0",
        module: "github.com/prometheus/alertmanager",
        version: "v0.34.0",
        command: "cmd/alertmanager",
        program: "alertmanager",
        at: "/bin/alertmanager",
        moduleFiles: { "/etc/alertmanager/alertmanager.yml": "examples/ha/alertmanager.yml" },
        ownedDirs: { "/etc/alertmanager": 0o755, "/alertmanager": 0o775 },
        user: "nobody",
        owner: "65534:65534",
        workdir: "/alertmanager",
        entrypoint: ["/bin/alertmanager"],
        cmd: ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
        expose: ["9093"],
        volumes: ["/alertmanager"],
        versionDifference:
            "no web UI (the module lacks the built Elm UI its ui package embeds: a one-page placeholder serves " +
            `"/", which the chart's probes ask for); no amtool; ${NO_SHELL}`,
    },
    {
        kind: "go",
        reference: "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
        module: "github.com/prometheus-operator/prometheus-operator",
        version: "v0.93.1",
        command: "cmd/prometheus-config-reloader",
        program: "prometheus-config-reloader",
        at: "/bin/prometheus-config-reloader",
        user: "nobody",
        entrypoint: ["/bin/prometheus-config-reloader"],
        versionDifference:
            "none in the program (its nested pkg/client and pkg/apis/monitoring modules come from the proxy at the " +
            `same tag, where the release builds them from its own tree); ${NO_SHELL}`,
    },
    {
        kind: "go",
        reference: "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
        module: "k8s.io/kube-state-metrics/v2",
        version: "v2.20.0",
        command: ".",
        program: "kube-state-metrics",
        at: "/kube-state-metrics",
        user: "nobody",
        entrypoint: ["/kube-state-metrics", "--port=8080", "--telemetry-port=8081"],
        expose: ["8080", "8081"],
        versionDifference: `none in the program; ${DISTROLESS_LESS}`,
    },
    {
        kind: "go",
        reference: "prom/statsd-exporter:v0.28.0",
        module: "github.com/prometheus/statsd_exporter",
        version: "v0.28.0",
        command: ".",
        program: "statsd_exporter",
        at: "/bin/statsd_exporter",
        user: "65534",
        entrypoint: ["/bin/statsd_exporter"],
        expose: ["9102", "9125", "9125/udp"],
        versionDifference: `none in the program; ${NO_SHELL} (its HEALTHCHECK's wget is left out)`,
    },
    {
        kind: "go",
        reference: "docker.io/oliver006/redis_exporter:v1.77.0",
        module: "github.com/oliver006/redis_exporter",
        version: "v1.74.0",
        command: ".",
        program: "redis_exporter",
        at: "/redis_exporter",
        user: "59000:59000",
        entrypoint: ["/redis_exporter"],
        expose: ["9121"],
        versionDifference:
            "v1.74.0, not v1.77.0: the Go module proxy does not serve v1.77.0 (403 'not available'); v1.74.0 is the " +
            "newest it serves; no CA bundle (upstream's image is scratch with Alpine's)",
    },
    {
        kind: "debian",
        reference: "docker.io/redis:7.4.6",
        definition: "redis",
        root: DEBIAN,
        args: {},
        package: "redis-server",
        builtFrom: "Debian bookworm's redis-server and redis-tools on a debootstrap minbase of bookworm",
        versionDifference:
            "Redis 7.0 (Debian bookworm's), not 7.4.6 (the dev stack's config uses no 7.2/7.4 directive); " +
            "setpriv where the official entrypoint has gosu",
    },
    {
        kind: "debian",
        reference: "ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie",
        definition: "cnpg-postgresql",
        root: DEBIAN_TRIXIE,
        args: { PG_MAJOR: "17" },
        package: "postgresql-17",
        builtFrom: "Debian trixie's postgresql-17 on a debootstrap minbase of trixie",
        versionDifference:
            "Debian trixie's PostgreSQL 17 minor release (17.12-0+deb13u1 when last built here), not PGDG's 17.11; " +
            "without the standard flavour's " +
            "locales-all, pgaudit, pgvector and pg_failover_slots (the dev stack's Cluster uses none)",
    },
];

/** The dev stack's third-party images that cannot be had here, with the reason (the node tier names them). */
export const MIRROR_EXCEPTIONS: Readonly<Record<string, string>> = {
    "docker.io/grafana/grafana:13.2.0":
        "Grafana: no Debian package, and its Go module is AGPL (not used by this project)",
    "quay.io/kiwigrid/k8s-sidecar:2.10.1":
        "Grafana's dashboard sidecar: it runs only in Grafana's pod, which cannot run here without Grafana's image",
    "quay.io/jetstack/cert-manager-controller:v1.19.1":
        "cert-manager's cmd/controller is a nested Go module the proxy does not serve (only the root module)",
    "quay.io/jetstack/cert-manager-webhook:v1.19.1":
        "cert-manager's cmd/webhook is a nested Go module the proxy does not serve (only the root module)",
    "quay.io/jetstack/cert-manager-cainjector:v1.19.1":
        "cert-manager's cmd/cainjector is a nested Go module the proxy does not serve (only the root module)",
    "quay.io/jetstack/cert-manager-startupapicheck:v1.19.1":
        "cert-manager's cmd/startupapicheck is a nested Go module the proxy does not serve (only the root module)",
};

/**
 * The path an upstream reference has in the mirror (no host): what containerd asks the mirror for. Docker Hub's
 * one-component names are its official images, under `library/`.
 */
export function mirrorPath(reference: string): string {
    const registry = registryOf(reference);
    const rest = reference.startsWith(`${registry}/`) ? reference.slice(registry.length + 1) : reference;
    return registry === "docker.io" && !rest.split(":")[0].includes("/") ? `library/${rest}` : rest;
}

/** What a Go program's stand-in is built from, as the docs table says it. */
export function builtFrom(spec: MirrorImageSpec): string {
    if (spec.kind === "debian") return spec.builtFrom;
    const pkg = spec.command === "." ? spec.module : `${spec.module}/${spec.command}`;
    return `${pkg}@${spec.version} (Go module proxy, scripts/tools.sh), FROM scratch`;
}

/** The tag of an upstream reference, after its last colon. */
const tagOf = (reference: string) => reference.slice(reference.lastIndexOf(":") + 1);

/** The Dockerfile of a Go program's image (its context: rootfs/ owned by root, owned/ by the image's user). */
export function goDockerfile(spec: GoImage, labels: Record<string, string>): string {
    const q = JSON.stringify;
    const lines = ["FROM scratch", "COPY rootfs/ /"];
    if (spec.ownedDirs) lines.push(`COPY --chown=${spec.owner} owned/ /`);
    lines.push(`LABEL ${Object.entries(labels).map(([k, v]) => `${k}=${q(v)}`).join(" \\\n      ")}`); // prettier-ignore
    lines.push(`USER ${spec.user}`);
    if (spec.workdir) lines.push(`WORKDIR ${spec.workdir}`);
    for (const p of spec.expose ?? []) lines.push(`EXPOSE ${p}`);
    if (spec.volumes) lines.push(`VOLUME ${q(spec.volumes)}`);
    lines.push(`ENTRYPOINT ${q(spec.entrypoint)}`);
    if (spec.cmd) lines.push(`CMD ${q(spec.cmd)}`);
    return lines.join("\n") + "\n";
}

function fileSha(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** The folder of a module in the Go module cache (scripts/tools.sh downloaded it). */
function moduleDir(module: string, version: string): string {
    const cache = spawnSync("go", ["env", "GOMODCACHE"], { encoding: "utf8" }).stdout.trim();
    const escaped = module.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
    const dir = path.join(cache, `${escaped}@${version}`);
    if (!fs.existsSync(dir))
        throw new Error(`${module}@${version} is not in the Go module cache: run scripts/tools.sh`);
    return dir;
}

/** The binary scripts/tools.sh built, checked to be of the spec's version (its build folder is named with it). */
function programOf(spec: GoImage): { binary: string; buildSeconds?: number } {
    const link = path.join(TOOLS_BIN, spec.program);
    if (!fs.existsSync(link)) throw new Error(`${spec.program} not built: run scripts/tools.sh`);
    const binary = fs.realpathSync(link);
    const folder = path.dirname(path.dirname(binary));
    if (!path.basename(folder).includes(`-${spec.version}`)) {
        throw new Error(`${binary} is not ${spec.module}@${spec.version}: scripts/tools.sh pins another version`);
    }
    const secondsFile = path.join(folder, "build-seconds");
    const buildSeconds = fs.existsSync(secondsFile) ? Number(fs.readFileSync(secondsFile, "utf8")) : undefined;
    return { binary, buildSeconds };
}

export interface MirrorImage {
    /** The upstream reference, as the charts name it. */
    reference: string;
    /** Where it was pushed: `<registry>/<mirror path>`. */
    pushed: string;
    /** The manifest digest the registry holds. */
    digest: string;
    builtFrom: string;
    versionDifference: string;
    /** The Debian package's version (Debian-made images). */
    packageVersion?: string;
    /** scripts/tools.sh's build of the program, as its folder recorded it (Go images). */
    programBuildSeconds?: number;
    /** Seconds this run spent building and pushing it. */
    seconds: number;
    /** Neither built nor pushed: the engine and the registry already held it. */
    cached: boolean;
}

/** The registry's digest of `repo:tag`, or undefined. */
async function registryDigest(registry: string, repo: string, tag: string): Promise<string | undefined> {
    const r = await fetch(`http://${registry}/v2/${repo}/manifests/${tag}`, {
        method: "HEAD",
        headers: {
            Accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        },
    });
    return r.status === 200 ? (r.headers.get("docker-content-digest") ?? undefined) : undefined;
}

/** Builds the image unless the engine has it from the same inputs; returns the extra result fields. */
function build(
    engine: DockerEngine,
    spec: MirrorImageSpec,
    tag: string,
    log: (s: string) => void,
): Pick<MirrorImage, "packageVersion" | "programBuildSeconds"> & { built: boolean } {
    const labels = {
        "dev.fx-ml.stand-in": "true",
        "dev.fx-ml.stand-in.for": spec.reference,
        "dev.fx-ml.stand-in.built-from": builtFrom(spec),
        "org.opencontainers.image.version": tagOf(spec.reference),
        "org.opencontainers.image.description": `STAND-IN for ${spec.reference}, built from ${builtFrom(spec)}`,
    };
    const current = (key: string) =>
        imageExists(engine, tag) && inspectImage(engine, tag).Config.Labels?.[INPUTS_LABEL] === key;
    const context = fs.mkdtempSync(path.join(os.tmpdir(), "fx-mirror-"));
    try {
        if (spec.kind === "go") {
            const { binary, buildSeconds } = programOf(spec);
            const files: Record<string, string> = {};
            if (spec.moduleFiles) {
                const dir = moduleDir(spec.module, spec.version);
                for (const [dest, src] of Object.entries(spec.moduleFiles)) files[dest] = path.join(dir, src);
            }
            const key = sha(
                goDockerfile(spec, labels),
                fileSha(binary),
                JSON.stringify(spec.links ?? {}),
                JSON.stringify(spec.ownedDirs ?? {}),
                ...Object.entries(files).flatMap(([d, s]) => [d, fileSha(s)]),
                PASSWD,
                GROUP,
            );
            if (current(key)) return { programBuildSeconds: buildSeconds, built: false };
            const root = path.join(context, "rootfs");
            const put = (dest: string, src: string, mode: number) => {
                fs.mkdirSync(path.dirname(path.join(root, dest)), { recursive: true, mode: 0o755 });
                fs.copyFileSync(src, path.join(root, dest));
                fs.chmodSync(path.join(root, dest), mode);
            };
            fs.mkdirSync(path.join(root, "tmp"), { recursive: true });
            fs.chmodSync(root, 0o755);
            fs.chmodSync(path.join(root, "tmp"), 0o1777);
            put(spec.at, binary, 0o755);
            for (const [dest, src] of Object.entries(files)) put(dest, src, 0o644);
            fs.mkdirSync(path.join(root, "etc"), { recursive: true, mode: 0o755 });
            fs.writeFileSync(path.join(root, "etc", "passwd"), PASSWD, { mode: 0o644 });
            fs.writeFileSync(path.join(root, "etc", "group"), GROUP, { mode: 0o644 });
            for (const [link, target] of Object.entries(spec.links ?? {}))
                fs.symlinkSync(target, path.join(root, link));
            for (const [dir, mode] of Object.entries(spec.ownedDirs ?? {})) {
                const owned = path.join(context, "owned", dir);
                fs.mkdirSync(owned, { recursive: true });
                fs.chmodSync(owned, mode);
                // Files upstream's chown -R covers move to the owned tree.
                if (fs.existsSync(path.join(root, dir))) {
                    fs.cpSync(path.join(root, dir), owned, { recursive: true });
                    fs.rmSync(path.join(root, dir), { recursive: true });
                }
            }
            fs.writeFileSync(path.join(context, "Dockerfile"), goDockerfile(spec, { ...labels, [INPUTS_LABEL]: key }));
            log(`[mirror] ${spec.reference}: ${builtFrom(spec)}`);
            buildContext(engine, context, tag, {});
            return { programBuildSeconds: buildSeconds, built: true };
        }
        // Keyed by the base's reference (a key of its debootstrap definition), not its image ID: another tier's prune
        // may remove the base, and its re-import from the cached tarball has a new ID but the same files.
        const definition = path.join(STANDIN_DEFINITIONS, spec.definition);
        const args = {
            ...spec.args,
            DEBIAN_BASE: debianBaseRef(spec.root),
            STANDIN_FOR: spec.reference,
            STANDIN_FROM: spec.builtFrom,
            STANDIN_VERSION: tagOf(spec.reference),
        };
        const key = sha(
            JSON.stringify(args),
            ...fs
                .readdirSync(definition)
                .sort()
                .flatMap((f) => [f, fileSha(path.join(definition, f))]),
        );
        const packageVersion = () =>
            engine
                .run(["run", "--rm", "--entrypoint", "dpkg-query", tag, "-W", "-f", "${Version}", spec.package])
                .trim();
        if (current(key)) return { packageVersion: packageVersion(), built: false };
        debianBase(engine, log, spec.root);
        fs.cpSync(definition, context, { recursive: true });
        // The key is a label of the image, so the next run knows what it was built from.
        fs.appendFileSync(path.join(context, "Dockerfile"), `LABEL ${INPUTS_LABEL}="${key}"\n`);
        log(`[mirror] ${spec.reference}: ${spec.builtFrom}`);
        buildContext(engine, context, tag, args);
        return { packageVersion: packageVersion(), built: true };
    } finally {
        fs.rmSync(context, { recursive: true, force: true });
    }
}

/**
 * Builds what is missing of the mirror's images (or only those named in `opts.only`), pushes each to `registry`
 * (host:port) at its mirror path unless the registry already holds it, and returns what was done for each.
 */
export async function buildMirrorImages(
    engine: DockerEngine,
    registry: string,
    opts: { only?: string[]; log?: (s: string) => void } = {},
): Promise<MirrorImage[]> {
    const log = opts.log ?? (() => undefined);
    const unknown = (opts.only ?? []).filter((r) => !MIRROR_IMAGES.some((s) => s.reference === r));
    if (unknown.length) throw new Error(`not images of the mirror: ${unknown.join(", ")}`);
    const out: MirrorImage[] = [];
    for (const spec of MIRROR_IMAGES.filter((s) => !opts.only || opts.only.includes(s.reference))) {
        const t0 = Date.now();
        const pushed = `${registry}/${mirrorPath(spec.reference)}`;
        const { built, ...extra } = build(engine, spec, pushed, log);
        const repo = mirrorPath(spec.reference).slice(0, -(tagOf(spec.reference).length + 1));
        const held = await registryDigest(registry, repo, tagOf(spec.reference));
        const repoDigests = inspectImage(engine, pushed).RepoDigests ?? [];
        let digest = held && repoDigests.includes(`${registry}/${repo}@${held}`) ? held : undefined;
        if (!digest) {
            const out = engine.run(["push", pushed]);
            digest = /digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1];
            if (!digest) throw new Error(`docker push ${pushed}: no digest in its output:\n${out}`);
        }
        out.push({
            reference: spec.reference,
            pushed,
            digest,
            builtFrom: builtFrom(spec),
            versionDifference: spec.versionDifference,
            ...extra,
            seconds: (Date.now() - t0) / 1000,
            cached: !built && digest === held,
        });
    }
    // Earlier builds of the same repositories (another version, other inputs) leave the engine and the registry.
    const repos = out.map((i) => i.pushed.slice(0, i.pushed.lastIndexOf(":")));
    const keep = out.map((i) => i.pushed);
    const removed = pruneImages(
        engine,
        keep,
        repos.map((r) => `${r}:`),
    );
    const inRegistry = keep.map((p) => p.slice(registry.length + 1));
    for (const repo of repos)
        removed.push(...(await pruneRegistry(registry, inRegistry, repo.slice(registry.length + 1))));
    if (removed.length) log(`[mirror] pruned earlier builds: ${removed.join(", ")}`);
    return out;
}
