/**
 * STAND-IN base images for the images tier (test/tiers/images.test.ts). No image registry is reachable from these
 * machines, so the third-party bases our Dockerfiles name are built here, under their exact references, from Debian
 * packages (debootstrap) and PyPI, each labelled `dev.fx-ml.stand-in=true` with what it stands in for and what it was
 * built from (tools/standins/images/<name>/Dockerfile says how, and docs/images.md lists them):
 *
 * - `python:3.11.18-slim-bookworm`: a debootstrap minbase of Debian bookworm with Debian's python3.11 laid out as the
 *   official image lays CPython out (python, pip in /usr/local/bin). Debian's python3.11 is 3.11.2, not 3.11.18.
 * - `apache/airflow:<version>-python3.11`: FROM the python stand-in, with Airflow and the providers the stack uses from
 *   PyPI, the official image's user (50000:0), AIRFLOW_HOME, user-site install and entrypoint behaviour.
 *
 * This machine's TLS-intercepting proxy CA goes into the python stand-in (so apt and pip reach the registries from a
 * build), never into our Dockerfiles; the images tier checks the layers those add.
 *
 * Not buildable here at all: `nvidia/cuda:13.0.2-runtime-ubuntu24.04` (fx-fingpt's base; NVIDIA's CUDA packages come
 * from NVIDIA's apt repository, and Ubuntu's archive is not reachable either) and what fx-fingpt's build downloads
 * besides (`uv python install` fetches CPython builds from GitHub). fx-fingpt is built on the gpu stack only.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DOCKER_CACHE, DockerEngine, imageExists } from "./docker";
import { ROOT } from "./stacks";
import type { StackRun } from "./harness";

const DEFINITIONS = path.join(ROOT, "tools", "standins", "images");

/** A debootstrap root: the Debian release, variant, mirror and package set. */
export interface DebianRoot {
    suite: string;
    variant: string;
    mirror: string;
    include: readonly string[];
}

/** The debootstrap root of the stand-ins (the mirror this machine's apt uses); the offline mirror's Debian-made images use it too. */
export const DEBIAN: DebianRoot = {
    suite: "bookworm",
    variant: "minbase",
    mirror: "http://deb.debian.org/debian",
    include: ["ca-certificates"],
};

/** Versions the python stand-in installs over Debian's python3.11-venv (its ensurepip has pip 23.0.1). */
const PYTHON_TOOLING = { PIP_VERSION: "25.3", SETUPTOOLS_VERSION: "80.9.0", WHEEL_VERSION: "0.45.1" } as const;

/** The Airflow extras the stand-in installs: the providers the stack uses (FAB: the admin user Job's auth manager). */
const AIRFLOW_EXTRAS = "celery,fab,postgres,redis,statsd";

/** The CA files of this machine's trust store that the python stand-in trusts (the proxy's). */
const MACHINE_CA_DIR = "/usr/local/share/ca-certificates";

export const PYTHON_REF = "python:3.11.18-slim-bookworm";
export const airflowRef = (version: string) => `apache/airflow:${version}-python3.11`;
/** fx-fingpt's base: not buildable here (see the file's comment). */
export const CUDA_REF = "nvidia/cuda:13.0.2-runtime-ubuntu24.04";
export const CUDA_UNBUILDABLE =
    `${CUDA_REF} cannot be built on these machines: it is Ubuntu 24.04 with NVIDIA's CUDA runtime packages, and ` +
    "neither Ubuntu's archive nor NVIDIA's apt repository is reachable (only Debian's is); fx-fingpt's build also " +
    "runs `uv python install`, which downloads CPython from GitHub. fx-fingpt is built on the gpu stack only.";

export interface StandInBase {
    ref: string;
    builtFrom: string;
    /** Seconds this run spent on it (0 when the cached image was used as it is). */
    seconds: number;
    cached: boolean;
}

/** The machine CA files (PEM) the proxy needs; every one of them must stay out of the layers our Dockerfiles add. */
export function machineCaFiles(): string[] {
    if (!fs.existsSync(MACHINE_CA_DIR)) return [];
    return fs
        .readdirSync(MACHINE_CA_DIR)
        .filter((f) => f.endsWith(".crt"))
        .map((f) => path.join(MACHINE_CA_DIR, f));
}

export function sha(...parts: string[]): string {
    const h = crypto.createHash("sha256");
    for (const p of parts) h.update(p).update("\0");
    return h.digest("hex").slice(0, 16);
}

/** The reference debianBase imports a root under: named by a key of the root's definition. */
export function debianBaseRef(root: DebianRoot = DEBIAN): string {
    return `fx-ml-standin/debian-${root.suite}:${root.variant}-${sha(JSON.stringify(root))}`;
}

/** debootstrap's root of Debian, imported once per package set; the tarball is kept in the cache. */
export function debianBase(engine: DockerEngine, log: (s: string) => void, root: DebianRoot = DEBIAN): StandInBase {
    const key = sha(JSON.stringify(root));
    const ref = debianBaseRef(root);
    const builtFrom = `debootstrap --variant=${root.variant} ${root.suite} ${root.mirror}`;
    if (imageExists(engine, ref)) return { ref, builtFrom, seconds: 0, cached: true };
    const t0 = Date.now();
    const cacheDir = path.join(DOCKER_CACHE, "debootstrap");
    fs.mkdirSync(cacheDir, { recursive: true });
    const tarball = path.join(cacheDir, `${root.suite}-${root.variant}-${key}.tar`);
    if (!fs.existsSync(tarball)) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-debootstrap-"));
        try {
            log(`[stand-ins] ${builtFrom} (cold: a minute or two)`);
            const r = spawnSync(
                "debootstrap",
                [`--variant=${root.variant}`, `--include=${root.include.join(",")}`, root.suite, dir, root.mirror],
                { encoding: "utf8", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } },
            );
            if (r.status !== 0)
                throw new Error(`debootstrap failed (${r.status}):\n${(r.stdout + r.stderr).slice(-4000)}`);
            // As the official slim images: no package lists or downloaded packages.
            for (const d of ["var/cache/apt/archives", "var/lib/apt/lists"]) {
                for (const f of fs.readdirSync(path.join(dir, d))) {
                    const p = path.join(dir, d, f);
                    if (fs.statSync(p).isFile()) fs.rmSync(p);
                }
            }
            const tar = spawnSync("tar", ["-C", dir, "--numeric-owner", "-cf", `${tarball}.tmp`, "."], {
                encoding: "utf8",
            });
            if (tar.status !== 0) throw new Error(`tar of the debootstrap root failed: ${tar.stderr}`);
            fs.renameSync(`${tarball}.tmp`, tarball);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }
    engine.run([
        "import",
        "--change",
        'CMD ["bash"]',
        "--change",
        `LABEL dev.fx-ml.stand-in=true dev.fx-ml.stand-in.built-from="${builtFrom}"`,
        tarball,
        ref,
    ]);
    return { ref, builtFrom, seconds: (Date.now() - t0) / 1000, cached: false };
}

/** `docker build` of a prepared context folder under `ref`; `cached` when the image it gives is the one `ref` had. */
export function buildContext(
    engine: DockerEngine,
    context: string,
    ref: string,
    args: Record<string, string>,
): { seconds: number; cached: boolean } {
    const before = imageExists(engine, ref) ? engine.run(["image", "inspect", "--format", "{{.Id}}", ref]) : "";
    const t0 = Date.now();
    const buildArgs = Object.entries(args).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]);
    const r = engine.spawn(["build", "--progress=plain", ...buildArgs, "--tag", ref, context]);
    if (r.status !== 0) {
        throw new Error(
            `stand-in ${ref}: docker build failed\n${(r.stdout + r.stderr).split("\n").slice(-40).join("\n")}`,
        );
    }
    const after = engine.run(["image", "inspect", "--format", "{{.Id}}", ref]);
    return { seconds: (Date.now() - t0) / 1000, cached: before === after };
}

/** `docker build` of a stand-in definition folder (tools/standins/images/<name>), with extra files copied into its context. */
export function buildDefinition(
    engine: DockerEngine,
    name: string,
    ref: string,
    args: Record<string, string>,
    extra: Record<string, string> = {},
): { seconds: number; cached: boolean } {
    const context = fs.mkdtempSync(path.join(os.tmpdir(), `fx-standin-${name}-`));
    try {
        fs.cpSync(path.join(DEFINITIONS, name), context, { recursive: true });
        for (const [dest, src] of Object.entries(extra)) {
            fs.mkdirSync(path.dirname(path.join(context, dest)), { recursive: true });
            fs.copyFileSync(src, path.join(context, dest));
        }
        return buildContext(engine, context, ref, args);
    } finally {
        fs.rmSync(context, { recursive: true, force: true });
    }
}

/** The folder of the stand-in definitions (a Dockerfile and its files each); part of a definition's input key. */
export const STANDIN_DEFINITIONS = DEFINITIONS;

/** The Airflow releases a stack's images build on (their AIRFLOW_VERSION build argument), each once. */
export function airflowVersionsOf(run: StackRun): string[] {
    const versions = run
        .ofType("docker:index/image:Image")
        .map((i) => i.inputs.build?.args?.AIRFLOW_VERSION as string | undefined)
        .filter((v): v is string => !!v);
    return [...new Set(versions)];
}

/**
 * Builds (or finds in the engine's cache, keyed by their inputs as BuildKit keys every step) the stand-in bases of
 * the images a stack builds: python always (fx-base's), Airflow at each release given.
 */
export function buildStandInBases(
    engine: DockerEngine,
    opts: { airflowVersions: string[]; log?: (s: string) => void },
): StandInBase[] {
    const log = opts.log ?? (() => undefined);
    const debian = debianBase(engine, log);
    const caFiles = machineCaFiles();
    const pythonFrom = `Debian ${DEBIAN.suite}'s python3.11 on ${debian.builtFrom}; pip ${PYTHON_TOOLING.PIP_VERSION} from PyPI`;
    log(`[stand-ins] ${PYTHON_REF}`);
    const python = buildDefinition(
        engine,
        "python",
        PYTHON_REF,
        { DEBIAN_BASE: debian.ref, ...PYTHON_TOOLING, STANDIN_FOR: PYTHON_REF, STANDIN_FROM: pythonFrom },
        Object.fromEntries(caFiles.map((f) => [`ca/${path.basename(f)}`, f])),
    );
    const out: StandInBase[] = [debian, { ref: PYTHON_REF, builtFrom: pythonFrom, ...python }];
    for (const version of opts.airflowVersions) {
        const ref = airflowRef(version);
        const from = `${PYTHON_REF} stand-in; apache-airflow[${AIRFLOW_EXTRAS}]==${version} from PyPI`;
        log(`[stand-ins] ${ref}`);
        const built = buildDefinition(engine, "airflow", ref, {
            PYTHON_BASE: PYTHON_REF,
            AIRFLOW_VERSION: version,
            AIRFLOW_EXTRAS,
            STANDIN_FOR: ref,
            STANDIN_FROM: from,
        });
        out.push({ ref, builtFrom: from, ...built });
    }
    return out;
}

/** The stand-in base an image's layers begin with (the longest such), given each base's layers; none if no base. */
export function standInBaseOf<T extends { layers: string[] }>(layers: string[], bases: readonly T[]): T | undefined {
    return bases
        .filter((b) => b.layers.every((l, i) => layers[i] === l))
        .sort((a, b) => b.layers.length - a.layers.length)[0];
}
