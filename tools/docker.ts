/**
 * A Docker engine and an image registry for the test tiers that build images (test/tiers/images.test.ts).
 *
 * startDocker: uses the engine DOCKER_HOST names, or the system's at /var/run/docker.sock, when one answers there;
 * otherwise starts Debian's dockerd (package
 * docker.io, installed by scripts/install-test-deps.sh) with its own socket and exec root under /run/fx-ml-docker and
 * its data root under $HOME/.cache/fx-ml-docker/data, so the layer and build caches survive between runs. Builds use
 * Debian's own client (/usr/bin/docker 20.10) with DOCKER_BUILDKIT=1: it drives BuildKit without the buildx plugin,
 * which newer clients require. `stop()` ends the daemon by PID (it stops its containerd and containers first) and
 * then removes what dockerd leaves on the host: the docker0 bridge and its iptables chains and rules, and the FORWARD
 * policy it set to DROP, so nothing of it is left.
 *
 * startRegistry: Debian's docker-registry (package docker-registry, CNCF distribution 2.8) on 127.0.0.1:5001, the dev
 * stack's registryServer (kind's documented local-registry port), storage under $HOME/.cache/fx-ml-docker/registry;
 * an answering registry there is used as it is.
 *
 * Both run under the API server tier's watchdog (tools/apiserver.ts startProcess): they end when the test process
 * ends, however it ends.
 */
import { ChildProcess, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { startProcess, stopProcess, tail } from "./apiserver";

/** Debian's docker client: it builds with BuildKit from DOCKER_BUILDKIT=1 alone. */
export const DOCKER_CLI = "/usr/bin/docker";
const DOCKERD = "/usr/sbin/dockerd";
const REGISTRY = "/usr/bin/docker-registry";

/** The caches: layers, build cache and the registry's blobs survive between runs, keyed by content as Docker keys them. */
export const DOCKER_CACHE = path.join(process.env.FX_DOCKER_CACHE ?? path.join(os.homedir(), ".cache", "fx-ml-docker"));
/** Short: a unix socket path must stay under 108 bytes. */
const EXEC_ROOT = "/run/fx-ml-docker";

/** Seconds to wait for the daemon and the registry to answer: generous, for a busy 2-core machine. */
const READY_TIMEOUT_SECONDS = 180;
/** Seconds dockerd gets to stop its containers and containerd before it is killed. */
const DOCKERD_GRACE_SECONDS = 60;

export interface DockerEngine {
    /** DOCKER_HOST for clients: unix://... */
    host: string;
    /** Whether this process started the daemon (and stops it). */
    started: boolean;
    /** The environment for the docker client: DOCKER_HOST, DOCKER_BUILDKIT=1. */
    env: Record<string, string>;
    /** Runs the docker client; throws with its output when it exits non-zero. */
    run(args: string[], opts?: { input?: string; timeoutSeconds?: number }): string;
    /** Runs the docker client (`env`: more of the client's environment) and returns what it did, whatever its exit code. */
    spawn(
        args: string[],
        opts?: { input?: string; timeoutSeconds?: number; env?: Record<string, string> },
    ): SpawnSyncReturns<string>;
    /** The daemon's own last log lines (when started here). */
    logs(lines?: number): string;
    stop(): Promise<void>;
}

function sh(cmd: string, args: string[]): SpawnSyncReturns<string> {
    return spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** The engine's environment for the docker client. */
function clientEnv(host: string): Record<string, string> {
    const env = Object.fromEntries(
        Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
    );
    return { ...env, DOCKER_HOST: host, DOCKER_BUILDKIT: "1" };
}

function answers(host: string): boolean {
    const r = spawnSync(DOCKER_CLI, ["version", "--format", "{{.Server.Version}}"], {
        env: clientEnv(host),
        encoding: "utf8",
        timeout: 20_000,
    });
    return r.status === 0 && r.stdout.trim() !== "";
}

/** The iptables rules and chains dockerd adds (filter and nat), as `iptables -S` lines, and the FORWARD policy. */
interface Netfilter {
    lines: Record<"filter" | "nat", string[]>;
    forwardPolicy: string;
}

function netfilter(): Netfilter {
    const rules = (table: string) => sh("iptables", ["-t", table, "-S"]).stdout.split("\n").filter(Boolean);
    const filter = rules("filter");
    const policy = filter.find((l) => l.startsWith("-P FORWARD "))?.split(" ")[2] ?? "ACCEPT";
    return { lines: { filter, nat: rules("nat") }, forwardPolicy: policy };
}

/** Removes the docker0 bridge and the iptables rules and chains dockerd added since `before`; restores FORWARD. */
function removeDockerNetworking(before: Netfilter, bridgeExisted: boolean): string[] {
    const problems: string[] = [];
    const now = netfilter();
    for (const table of ["nat", "filter"] as const) {
        const had = new Set(before.lines[table]);
        const added = now.lines[table].filter((l) => !had.has(l));
        // Rules first (jumps into the chains), then the chains themselves.
        for (const rule of added.filter((l) => l.startsWith("-A "))) {
            const r = sh("iptables", ["-t", table, "-D", ...splitRule(rule.slice(3))]);
            if (r.status !== 0) problems.push(`iptables -t ${table} -D ${rule.slice(3)}: ${r.stderr.trim()}`);
        }
        for (const chain of added.filter((l) => l.startsWith("-N ")).map((l) => l.slice(3))) {
            sh("iptables", ["-t", table, "-F", chain]);
            const r = sh("iptables", ["-t", table, "-X", chain]);
            if (r.status !== 0) problems.push(`iptables -t ${table} -X ${chain}: ${r.stderr.trim()}`);
        }
    }
    if (now.forwardPolicy !== before.forwardPolicy) sh("iptables", ["-P", "FORWARD", before.forwardPolicy]);
    if (!bridgeExisted && sh("ip", ["link", "show", "docker0"]).status === 0) {
        const r = sh("ip", ["link", "delete", "docker0"]);
        if (r.status !== 0) problems.push(`ip link delete docker0: ${r.stderr.trim()}`);
    }
    return problems;
}

/** What a Docker engine leaves on the host, as the tiers' "nothing left" checks read it. */
export interface DockerHostTrace {
    /** Processes of an engine started here (dockerd, its containerd and shims) and of the registry. */
    processes: string;
    /** Mounts under the engine's exec root or data root. */
    mounts: string;
    /** iptables rules and chains that name Docker (filter and nat). */
    iptables: string;
    /** The docker0 bridge. */
    bridge: string;
    execRoot: boolean;
}

export function dockerHostTrace(): DockerHostTrace {
    const bash = (cmd: string) => spawnSync("bash", ["-c", cmd], { encoding: "utf8" }).stdout.trim();
    return {
        processes: bash("pgrep -af 'fx-ml-docke[r]|docker-registr[y] serve' || true"),
        mounts: bash("grep fx-ml-docker /proc/mounts || true"),
        iptables: bash("(iptables -S; iptables -t nat -S) | grep -i docker || true"),
        bridge: bash("ip -o link show docker0 2>/dev/null || true"),
        execRoot: fs.existsSync(EXEC_ROOT),
    };
}

/**
 * Ends what an engine of ours left when it was killed (its containerd and shims, which outlive a killed dockerd) and
 * unmounts what it left under its exec root and data root; returns what it found. Only paths that are ours alone.
 */
function clearOwnLeftovers(): string[] {
    const found: string[] = [];
    for (const line of sh("pgrep", ["-af", EXEC_ROOT]).stdout.split("\n").filter(Boolean)) {
        const pid = Number(line.split(" ")[0]);
        if (pid === process.pid) continue;
        found.push(`process ${line}`);
        try {
            process.kill(pid, "SIGKILL");
        } catch {
            // gone already
        }
    }
    const roots = [EXEC_ROOT, DOCKER_CACHE];
    const mounts = fs
        .readFileSync("/proc/mounts", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[1])
        .filter((m) => m && roots.some((r) => m === r || m.startsWith(r + "/")))
        .sort((a, b) => b.length - a.length);
    for (const m of mounts) {
        found.push(`mount ${m}`);
        sh("umount", ["-l", m]);
    }
    return found;
}

/** `iptables -S` prints each argument shell-quoted where needed (comments): split it back into arguments. */
function splitRule(rule: string): string[] {
    const out: string[] = [];
    const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
    for (let m = re.exec(rule); m; m = re.exec(rule)) out.push(m[1] !== undefined ? m[1] : m[2]);
    return out;
}

function waitFor(what: string, ready: () => boolean, failed: () => string | undefined): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_SECONDS * 1000;
    return new Promise((resolve, reject) => {
        const poll = () => {
            const why = failed();
            if (why) return reject(new Error(`${what}: ${why}`));
            if (ready()) return resolve();
            if (Date.now() > deadline) return reject(new Error(`${what}: not ready after ${READY_TIMEOUT_SECONDS} s`));
            setTimeout(poll, 500);
        };
        poll();
    });
}

function client(host: string, started: boolean, logs: (n?: number) => string, stop: () => Promise<void>): DockerEngine {
    const env = clientEnv(host);
    const spawn = (
        args: string[],
        opts: { input?: string; timeoutSeconds?: number; env?: Record<string, string> } = {},
    ) =>
        spawnSync(DOCKER_CLI, args, {
            env: { ...env, ...(opts.env ?? {}) },
            encoding: "utf8",
            input: opts.input,
            maxBuffer: 256 * 1024 * 1024,
            timeout: (opts.timeoutSeconds ?? 3600) * 1000,
        });
    return {
        host,
        started,
        env,
        spawn,
        run: (args, opts) => {
            const r = spawn(args, opts);
            if (r.status !== 0) {
                throw new Error(
                    `docker ${args.join(" ")} exited ${r.status ?? r.signal}:\n${(r.stdout ?? "") + (r.stderr ?? "")}`,
                );
            }
            return r.stdout;
        },
        logs,
        stop,
    };
}

/** The engine DOCKER_HOST names or the system's, when one answers; otherwise a dockerd of our own (see the file's comment). */
export async function startDocker(): Promise<DockerEngine> {
    const need = (tool: string) => {
        if (!fs.existsSync(tool))
            throw new Error(`${tool} not found: install Debian's docker.io (scripts/install-test-deps.sh does)`);
    };
    need(DOCKER_CLI);
    // The engine DOCKER_HOST names, or the system's own (a CI runner's Docker), used as they are.
    for (const given of [process.env.DOCKER_HOST, "unix:///var/run/docker.sock"]) {
        if (given && answers(given)) {
            return client(
                given,
                false,
                () => `(the engine at ${given} is not ours)`,
                async () => {},
            );
        }
    }

    need(DOCKERD);
    const host = `unix://${EXEC_ROOT}/docker.sock`;
    if (answers(host)) {
        throw new Error(
            `a dockerd already answers at ${host} (left by an earlier run?): stop it (kill $(cat ${EXEC_ROOT}/dockerd.pid)) or set DOCKER_HOST to it`,
        );
    }
    const stale = clearOwnLeftovers();
    if (stale.length > 0) process.stderr.write(`[docker] cleared what an earlier engine left:\n${stale.join("\n")}\n`);
    const dataRoot = path.join(DOCKER_CACHE, "data");
    fs.mkdirSync(dataRoot, { recursive: true });
    fs.rmSync(EXEC_ROOT, { recursive: true, force: true });
    fs.mkdirSync(EXEC_ROOT, { recursive: true });
    const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "fx-dockerd-")), "dockerd.log");
    const before = netfilter();
    const bridgeExisted = sh("ip", ["link", "show", "docker0"]).status === 0;
    // The daemon reaches the package registries for builds and 127.0.0.1:5001 for pushes: no proxy settings of the
    // caller (the engine tiers point HTTP(S)_PROXY at a closed port) may reach it.
    const env = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k) && k !== "DOCKER_HOST"),
    );
    const daemon: ChildProcess = startProcess(
        DOCKERD,
        [
            `--data-root=${dataRoot}`,
            `--exec-root=${EXEC_ROOT}`,
            `--pidfile=${EXEC_ROOT}/dockerd.pid`,
            `--host=${host}`,
            "--group=root",
            "--log-level=warn",
        ],
        logFile,
        { graceSeconds: DOCKERD_GRACE_SECONDS, env },
    );
    const logs = (lines = 40) => `--- dockerd (${logFile}) ---\n${tail(logFile, lines)}`;
    let stopped = false;
    const stop = async () => {
        if (stopped) return;
        stopped = true;
        await stopProcess(daemon, DOCKERD_GRACE_SECONDS);
        // A dockerd killed after its grace leaves its containerd and shims running.
        const killed = clearOwnLeftovers();
        if (killed.length > 0) process.stderr.write(`[docker] dockerd left, now ended:\n${killed.join("\n")}\n`);
        const problems = removeDockerNetworking(before, bridgeExisted);
        fs.rmSync(EXEC_ROOT, { recursive: true, force: true });
        if (problems.length > 0) throw new Error(`dockerd stopped, but cleaning up failed:\n${problems.join("\n")}`);
    };
    try {
        await waitFor(
            "dockerd",
            () => answers(host),
            () => (daemon.exitCode !== null ? `exited with code ${daemon.exitCode}\n${logs()}` : undefined),
        );
    } catch (e) {
        await stop().catch(() => undefined);
        throw e;
    }
    return client(host, true, logs, stop);
}

export interface Registry {
    /** host:port, e.g. localhost:5001 */
    address: string;
    started: boolean;
    logs(lines?: number): string;
    stop(): Promise<void>;
}

async function registryAnswers(address: string): Promise<boolean> {
    try {
        const r = await fetch(`http://${address}/v2/`, { signal: AbortSignal.timeout(5000) });
        return r.status === 200;
    } catch {
        return false;
    }
}

/** A registry on 127.0.0.1:<port> (5001: the dev stack's registryServer); one already answering there is used. */
export async function startRegistry(port = 5001): Promise<Registry> {
    const address = `localhost:${port}`;
    if (await registryAnswers(address)) {
        return {
            address,
            started: false,
            logs: () => `(the registry at ${address} is not ours)`,
            stop: async () => {},
        };
    }
    if (!fs.existsSync(REGISTRY)) {
        throw new Error(`${REGISTRY} not found: install Debian's docker-registry (scripts/install-test-deps.sh does)`);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-registry-"));
    const storage = path.join(DOCKER_CACHE, "registry");
    fs.mkdirSync(storage, { recursive: true });
    const config = path.join(dir, "config.yml");
    fs.writeFileSync(
        config,
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            `    rootdirectory: ${storage}`,
            "  delete:",
            "    enabled: true",
            "http:",
            `  addr: 127.0.0.1:${port}`,
            "",
        ].join("\n"),
    );
    const logFile = path.join(dir, "registry.log");
    // The registry reads its own REGISTRY_* environment variables as configuration: none of the caller's reach it.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")));
    const proc = startProcess(REGISTRY, ["serve", config], logFile, { graceSeconds: 10, env });
    const logs = (lines = 40) => `--- docker-registry (${logFile}) ---\n${tail(logFile, lines)}`;
    let stopped = false;
    const stop = async () => {
        if (stopped) return;
        stopped = true;
        await stopProcess(proc, 10);
        // Blobs of manifests deleted by pruneRegistry go now (distribution collects garbage only while stopped).
        const gc = spawnSync(REGISTRY, ["garbage-collect", "--delete-untagged", config], { encoding: "utf8", env });
        if (gc.status !== 0) throw new Error(`docker-registry garbage-collect failed: ${gc.stdout}${gc.stderr}`);
    };
    const deadline = Date.now() + READY_TIMEOUT_SECONDS * 1000;
    while (!(await registryAnswers(address))) {
        if (proc.exitCode !== null || Date.now() > deadline) {
            await stop();
            throw new Error(`docker-registry on ${address} did not answer /v2/\n${logs()}`);
        }
        await new Promise((r) => setTimeout(r, 300));
    }
    return { address, started: true, logs, stop };
}

/** What `docker image inspect` says of one image (the fields the tiers read). */
export interface ImageInfo {
    Id: string;
    RepoTags: string[];
    RepoDigests: string[];
    Size: number;
    Config: { User?: string; Env?: string[]; Labels?: Record<string, string>; Entrypoint?: string[]; Cmd?: string[] };
    RootFS: { Layers: string[] };
}

export function inspectImage(engine: DockerEngine, ref: string): ImageInfo {
    return JSON.parse(engine.run(["image", "inspect", ref]))[0];
}

export function imageExists(engine: DockerEngine, ref: string): boolean {
    return engine.spawn(["image", "inspect", "--format", "{{.Id}}", ref]).status === 0;
}

/**
 * Removes from the engine what the build no longer references: images under the given repository prefixes that are
 * not among `keep` (earlier content tags, earlier stand-in keys), dangling images, and build cache unused for three
 * days (recent cache stays: it is what makes the next build warm).
 */
export function pruneImages(engine: DockerEngine, keep: string[], prefixes: string[]): string[] {
    const kept = new Set(keep);
    const removed = engine
        .run(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        .split("\n")
        .filter((ref) => ref && !ref.endsWith(":<none>") && prefixes.some((p) => ref.startsWith(p)) && !kept.has(ref));
    for (const ref of removed) engine.run(["image", "rm", ref]);
    engine.run(["image", "prune", "--force"]);
    engine.run(["builder", "prune", "--force", "--filter", "until=72h"]);
    return removed;
}

/**
 * Deletes from the registry every manifest of the repositories under `prefix` that no tag of `keep`
 * (`repository:tag`) points to; their blobs go at the registry's next stop (garbage-collect).
 */
export async function pruneRegistry(address: string, keep: string[], prefix: string): Promise<string[]> {
    const accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
    const digestOf = async (repo: string, ref: string) =>
        (
            await fetch(`http://${address}/v2/${repo}/manifests/${ref}`, {
                method: "HEAD",
                headers: { Accept: accept },
            })
        ).headers.get("docker-content-digest");
    const catalog = (await (await fetch(`http://${address}/v2/_catalog`)).json()) as { repositories: string[] };
    const removed: string[] = [];
    for (const repo of catalog.repositories.filter((r) => r.startsWith(prefix))) {
        const tags =
            ((await (await fetch(`http://${address}/v2/${repo}/tags/list`)).json()) as { tags: string[] | null })
                .tags ?? [];
        const kept = new Set<string>();
        for (const t of tags.filter((t) => keep.includes(`${repo}:${t}`))) kept.add((await digestOf(repo, t)) ?? "");
        for (const t of tags.filter((t) => !keep.includes(`${repo}:${t}`))) {
            const digest = await digestOf(repo, t);
            if (!digest || kept.has(digest)) continue;
            const r = await fetch(`http://${address}/v2/${repo}/manifests/${digest}`, { method: "DELETE" });
            if (r.status !== 202) throw new Error(`registry: DELETE ${repo}@${digest} answered ${r.status}`);
            removed.push(`${repo}:${t}`);
        }
    }
    return removed;
}
