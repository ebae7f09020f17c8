/**
 * The dev stack on the real node (test/tiers/cluster-stack.test.ts): a Docker engine and the local registry
 * (tools/docker.ts), the stand-in bases (tools/standin-images.ts), the node (tools/cluster.ts), then a stack prepared
 * as the other engine tiers prepare it (tools/engine.ts prepareStack: the stack file's config, the node's kubeconfig,
 * `chartRepository` = ../shared/charts, an inline program, a throwaway file backend, no network for the engine).
 *
 * The real provider's own readiness waits apply to every resource but the named exceptions (`NODE_EXCEPTIONS`):
 * releases whose images cannot be had on this machine. For those alone the inline program's transform installs the
 * Release without waiting and without hooks, and sets its admission webhooks to `Ignore` (their server cannot run).
 */
import * as pulumi from "@pulumi/pulumi";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { tool } from "./apiserver";
import { Cluster, NODE_ADDRESS, startCluster } from "./cluster";
import { DockerEngine, Registry, startDocker, startRegistry } from "./docker";
import { offlineEngineEnv, prepareStack, projectCopy, projectProgram } from "./engine";
import { installPlugins, InstalledPlugin } from "./plugins";
import { buildStandInBases, StandInBase } from "./standin-images";
import { SHARED_DATA } from "./stacks";
import { writeWebhookPostRenderer } from "./update-checks";
import type { Stack } from "@pulumi/pulumi/automation";

/** Helm releases (by their Pulumi resource name) whose images cannot be had here, with the reason. */
export const NODE_EXCEPTIONS: Readonly<Record<string, string>> = {
    "fx-grafana":
        "Grafana: no Debian package, and its Go module is AGPL (not used by this project): no stand-in image can be built here",
    "cert-manager-helm":
        "cert-manager: the Go module proxy serves only the root module, not the controller/webhook/cainjector/" +
        "startupapicheck command modules: no stand-in image can be built here",
};

/**
 * Config the tier sets beyond the node's kubeconfig and the chart folder, each with its reason (printed by the tier).
 * Nothing here switches a component off or shortens a schedule, retry or reload interval.
 */
export const TIER_OVERRIDES: Readonly<Record<string, { value: string; reason: string }>> = {
    airflowWorkerReplicas: {
        value: "2",
        reason: "two Celery workers: the pipeline's tasks must find each other's data from either worker (dev runs one)",
    },
};

/** The transform for the exceptions only: no waits, no hooks, webhooks `Ignore`. Every other resource is untouched. */
export function exceptionsOnly(postRenderer: string, exceptions = NODE_EXCEPTIONS): pulumi.ResourceTransform {
    return (args) => {
        if (args.type === "kubernetes:helm.sh/v3:Release" && args.name in exceptions) {
            return {
                props: { ...args.props, skipAwait: true, disableWebhooks: true, postrender: postRenderer },
                opts: args.opts,
            };
        }
        return undefined;
    };
}

export interface NodeStack {
    docker: DockerEngine;
    registry: Registry;
    bases: StandInBase[];
    cluster: Cluster;
    stack: Stack;
    plugins: InstalledPlugin[];
    home: string;
    timings: Record<string, number>;
}

/** Starts everything and prepares the dev stack (no `up` yet). `stopAll` undoes it in reverse order. */
export async function prepareNodeStack(
    airflowVersions: string[],
    log: (s: string) => void = () => undefined,
): Promise<NodeStack> {
    const timings: Record<string, number> = {};
    const timed = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
        const t = Date.now();
        const r = await f();
        timings[name] = (Date.now() - t) / 1000;
        log(`[node-stack] ${name}: ${timings[name]} s`);
        return r;
    };
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "fx-node-stack-"));
    const partial: Partial<NodeStack> = { home, timings };
    try {
        partial.docker = await timed("Docker engine start", () => startDocker());
        partial.registry = await timed("registry start", () => startRegistry(5001));
        partial.bases = await timed("stand-in bases", () =>
            buildStandInBases(partial.docker!, { airflowVersions, log }),
        );
        partial.cluster = await timed("node start", () => startCluster());
        const pulumiHome = path.join(home, "pulumi-home");
        partial.plugins = installPlugins(pulumiHome, path.join(home, "plugins"));
        const env = {
            ...offlineEngineEnv(pulumiHome, "node-stack"),
            PULUMI_BACKEND_URL: `file://${fs.mkdtempSync(path.join(home, "state-"))}`,
            DOCKER_HOST: partial.docker.host,
            // The engine reaches nothing but this machine; the node's API server listens on the node's address.
            NO_PROXY: `127.0.0.1,localhost,${NODE_ADDRESS}`,
        };
        const postRenderer = writeWebhookPostRenderer(home);
        partial.stack = await prepareStack({
            stack: "dev",
            workDir: projectCopy(home),
            program: projectProgram(exceptionsOnly(postRenderer)),
            config: {
                kubeconfig: partial.cluster.kubeconfig,
                kubeContext: partial.cluster.api.context,
                chartRepository: SHARED_DATA.charts,
                ...Object.fromEntries(Object.entries(TIER_OVERRIDES).map(([k, v]) => [k, v.value])),
            },
            envVars: env,
        });
        return partial as NodeStack;
    } catch (e) {
        await stopAll(partial).catch((s) => log(`[node-stack] stopping after a failed start: ${s}`));
        throw e;
    }
}

/** Stops the node, the registry and the engine (those this run started), in that order; every error is reported. */
export async function stopAll(s: Partial<NodeStack>): Promise<void> {
    const errors: string[] = [];
    for (const [name, stop] of [
        ["node", () => s.cluster?.stop()],
        ["registry", () => s.registry?.stop()],
        ["Docker engine", () => s.docker?.stop()],
    ] as const) {
        try {
            await stop();
        } catch (e) {
            errors.push(`${name}: ${(e as Error).message}`);
        }
    }
    if (errors.length) throw new Error(errors.join("\n"));
}

/** A pod as the tier reads it. */
export interface PodState {
    namespace: string;
    name: string;
    phase: string;
    ready: boolean;
    restarts: number;
    /** The controller that owns it, resolved through ReplicaSets and CloudNativePG's Jobs: `Kind/name`. */
    owner: string;
    /** Each container not ready: `name: reason (message)`, with the last termination's exit code. */
    problems: string[];
}

const isReady = (p: any) => (p.status?.conditions ?? []).some((c: any) => c.type === "Ready" && c.status === "True");

/** Every pod of `namespaces`, with its owning controller (a Deployment, not its ReplicaSet). */
export function podStates(kubectl: (args: string[]) => string, namespaces: readonly string[]): PodState[] {
    const out: PodState[] = [];
    for (const ns of namespaces) {
        const pods = JSON.parse(kubectl(["get", "pods", "-n", ns, "-o", "json"])).items as any[];
        const sets = JSON.parse(kubectl(["get", "replicasets,jobs", "-n", ns, "-o", "json"])).items as any[];
        const ownerOf = (kind: string, name: string): string => {
            const set = sets.find((s) => s.kind === kind && s.metadata.name === name);
            const up = set?.metadata?.ownerReferences?.find((o: any) => o.controller);
            return up ? ownerOf(up.kind, up.name) : `${kind}/${name}`;
        };
        for (const p of pods) {
            const ref = (p.metadata.ownerReferences ?? []).find((o: any) => o.controller);
            const statuses = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])];
            out.push({
                namespace: ns,
                name: p.metadata.name,
                phase: p.status?.phase ?? "Unknown",
                ready: isReady(p),
                restarts: statuses.reduce((n: number, c: any) => n + (c.restartCount ?? 0), 0),
                owner: ref ? ownerOf(ref.kind, ref.name) : "(none)",
                problems: statuses
                    // An init container that finished is not a problem.
                    .filter((c: any) => !c.ready && c.state?.terminated?.exitCode !== 0)
                    .map((c: any) => {
                        const s = c.state?.waiting ?? c.state?.terminated ?? {};
                        const last = c.lastState?.terminated;
                        return (
                            `${c.name}: ${s.reason ?? "not ready"}${s.message ? ` (${s.message})` : ""}` +
                            (last ? `; last exit ${last.exitCode} (${last.reason ?? ""})` : "")
                        );
                    }),
            });
        }
    }
    return out;
}

/** A failed pod's story: its problems, its events and each container's last log lines (the current and previous run). */
export function podReport(kubectl: (args: string[]) => string, pod: PodState, lines = 20): string {
    const k = (args: string[]) => {
        try {
            return kubectl(args);
        } catch (e) {
            return `(${(e as Error).message.split("\n")[0]})`;
        }
    };
    const spec = JSON.parse(k(["get", "pod", "-n", pod.namespace, pod.name, "-o", "json"]) || "{}");
    const containers = [...(spec.spec?.initContainers ?? []), ...(spec.spec?.containers ?? [])].map((c: any) => c.name);
    const out = [
        `=== pod ${pod.namespace}/${pod.name} (${pod.owner}): ${pod.phase}, ready ${pod.ready}, ${pod.restarts} restarts`,
        ...pod.problems.map((p) => `  ${p}`),
        "--- events ---",
        k(["get", "events", "-n", pod.namespace, "--field-selector", `involvedObject.name=${pod.name}`,
            "--sort-by=.lastTimestamp"]), // prettier-ignore
    ];
    for (const c of containers) {
        out.push(`--- logs ${c} ---`, k(["logs", "-n", pod.namespace, pod.name, "-c", c, `--tail=${lines}`]));
        if (pod.restarts > 0)
            out.push(
                `--- logs ${c} (previous) ---`,
                k(["logs", "-n", pod.namespace, pod.name, "-c", c, "--previous", `--tail=${lines}`]),
            );
    }
    return out.join("\n");
}

/** A `kubectl port-forward` to a Service of the node: the user's way in (the Service's own selector and port). */
export interface Forward {
    url: string;
    close(): void;
}

export async function portForward(
    kubeconfig: string,
    namespace: string,
    service: string,
    port: number,
): Promise<Forward> {
    const child = spawn(tool("kubectl"), ["--kubeconfig", kubeconfig, "port-forward", "-n", namespace,
        "--address", "127.0.0.1", `svc/${service}`, `:${port}`], { stdio: ["ignore", "pipe", "pipe"] }); // prettier-ignore
    let out = "";
    const local = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
            () => reject(new Error(`port-forward to ${namespace}/${service}:${port}: ${out}`)),
            30_000,
        );
        const read = (b: Buffer) => {
            out += b.toString();
            const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        };
        child.stdout!.on("data", read);
        child.stderr!.on("data", read);
        child.on("exit", (code) => {
            clearTimeout(timer);
            reject(new Error(`port-forward to ${namespace}/${service}:${port} exited ${code}: ${out}`));
        });
    });
    return { url: `http://127.0.0.1:${local}`, close: () => child.kill() };
}
