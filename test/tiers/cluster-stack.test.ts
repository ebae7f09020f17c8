/**
 * The dev stack on the real node (run by `npm run test:cluster` after the node tier): `pulumi up` of dev by the real
 * Pulumi CLI and Kubernetes provider against the single-node cluster of tools/cluster.ts, every image the program
 * builds built and pushed for real, every third-party image pulled by its upstream reference through containerd's
 * mirrors from the local registry (STAND-INS built here: tools/mirror-images.ts, docs/airgap.md).
 *
 * The stack is dev as users get it: Pulumi.dev.yaml's config, plus only the cluster target and the chart folder
 * (printed with their reason). The provider's own readiness waits apply to everything but the named exceptions
 * (tools/node-stack.ts NODE_EXCEPTIONS: Grafana and cert-manager, whose images cannot be had here).
 *
 * Asserted: the pods are exactly the workloads the program renders for dev; every Helm release deployed; every pod
 * Running and Ready with at most one restart, every Job complete, every Service with ready endpoints, every PVC bound
 * (the exceptions' pods named with their reason); Postgres accepts each role's generated password and each database
 * belongs to its role; Redis answers AUTH with the generated password and has the append-only file on; a second up
 * plans no change and a replica change updates in place; the destroy leaves nothing of the stack. A failure names each
 * pod with its events and last log lines. Figures: bench/results/cluster.md.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { destroy, up, UpdateRun } from "../../tools/engine";
import { runStack, StackRun } from "../../tools/harness";
import { helmBinary, renderCharts } from "../../tools/helm-render";
import { buildMirrorImages, MIRROR_EXCEPTIONS, MirrorImage } from "../../tools/mirror-images";
import {
    Forward,
    NODE_EXCEPTIONS,
    NodeStack,
    portForward,
    podReport,
    podStates,
    PodState,
    prepareNodeStack,
    stopAll,
    TIER_OVERRIDES,
} from "../../tools/node-stack";
import { K8sObject, render } from "../../tools/render-lib";
import { ROOT } from "../../tools/stacks";
import { airflowVersionsOf } from "../../tools/standin-images";
import { tool } from "../../tools/apiserver";
import type { UpResult } from "@pulumi/pulumi/automation";

const RESULTS = path.join(ROOT, "out", "cluster-stack");
const FIGURES = path.join(ROOT, "bench", "results", "cluster.md");
const log = (s: string) => process.stdout.write(`${s}\n`);

/** The namespaces the dev stack deploys into (the program's and the charts'). */
const NAMESPACES = ["fx-ml", "fx-ml-monitoring", "cnpg-system", "cert-manager"];
/** Pods of the exception releases: by namespace, or by the release's instance label. */
const EXCEPTION_NAMESPACES = ["cert-manager"];
const EXCEPTION_OWNERS = [/^(Deployment|ReplicaSet)\/grafana/];

let s: NodeStack | undefined;
let mock: StackRun;
let upRun: UpdateRun<UpResult>;
let mirror: MirrorImage[] = [];
let upSeconds = 0;
let allReadySeconds: number | undefined;
let firstPredictSeconds: number | undefined;
/** When the up began (the clock of the figures). */
let upStart = 0;
let pods: PodState[] = [];
const figures: string[] = [];

const kubectl = (args: string[], input?: string) => s!.cluster.kubectl(args, input);
const isException = (p: PodState) =>
    EXCEPTION_NAMESPACES.includes(p.namespace) || EXCEPTION_OWNERS.some((r) => r.test(p.owner));

/** Every pod that is not Running and Ready (or has restarted more than once), with its story. */
function unhealthy(states: PodState[]): PodState[] {
    return states.filter(
        (p) => !isException(p) && !(p.phase === "Succeeded") && (!p.ready || p.phase !== "Running" || p.restarts > 1),
    );
}

function reports(states: PodState[]): string {
    return states.map((p) => podReport(kubectl, p)).join("\n");
}

/** The workloads dev renders: `<namespace> <Kind>/<name>` of each Deployment, StatefulSet, DaemonSet, Job, CNPG Cluster. */
function renderedWorkloads(run: StackRun): string[] {
    const r = render(run);
    const objects: K8sObject[] = [
        ...r.objects.map((o) => o.object),
        ...renderCharts(r).flatMap((c) => c.objects.map((o) => ({ ...o, _release: c.namespace }) as K8sObject)),
    ];
    const out = new Set<string>();
    for (const o of objects) {
        if (!["Deployment", "StatefulSet", "DaemonSet", "Job", "Cluster"].includes(o.kind)) continue;
        const hook = (o.metadata.annotations ?? {})["helm.sh/hook"];
        // Chart hooks of the exception releases are not run (no hooks for them); test hooks never are.
        if (hook && /test/.test(hook)) continue;
        out.add(`${o.metadata.namespace ?? (o as any)._release} ${o.kind}/${o.metadata.name}`);
    }
    return [...out].sort();
}

async function poll<T>(
    what: string,
    seconds: number,
    check: () => T | undefined | Promise<T | undefined>,
    failure: () => string | Promise<string>,
    everySeconds = 3,
): Promise<T> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
        const v = await check();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`${what}: not after ${seconds.toFixed(0)} s\n${await failure()}`);
        await new Promise((r) => setTimeout(r, everySeconds * 1000));
    }
}

beforeAll(async () => {
    fs.mkdirSync(RESULTS, { recursive: true });
    mock = await runStack("dev");
    const airflowVersions = airflowVersionsOf(mock);
    s = await prepareNodeStack(airflowVersions, log);
    const t = Date.now();
    mirror = await buildMirrorImages(s.docker, s.registry.address, { log });
    s.timings["mirror images"] = (Date.now() - t) / 1000;
    for (const [key, reason] of [
        ["kubeconfig, kubeContext", "the test node's, instead of kind-fx-ml"],
        ["chartRepository", "../shared/charts: no chart repository is reachable here"],
        ...Object.entries(TIER_OVERRIDES).map(([k, v]) => [`${k} ${v.value}`, v.reason]),
    ])
        log(`[cluster-stack] TIER OVERRIDE ${key}: ${reason}`);
    for (const [image, reason] of Object.entries(MIRROR_EXCEPTIONS))
        log(`[cluster-stack] EXCEPTION ${image}: not in the mirror: ${reason}`);
    for (const [release, reason] of Object.entries(NODE_EXCEPTIONS))
        log(`[cluster-stack] EXCEPTION ${release}: installed without waits or hooks, webhooks Ignore: ${reason}`);

    // Time from the start of the up to every pod Ready, polled beside the up.
    const start = Date.now();
    upStart = start;
    let done = false;
    const watcher = (async () => {
        while (!done) {
            try {
                const states = podStates(kubectl, NAMESPACES);
                if (states.length > 0 && unhealthy(states).length === 0 && allReadySeconds === undefined)
                    allReadySeconds = (Date.now() - start) / 1000;
            } catch {
                // the API server is busy; the next poll reads again
            }
            await new Promise((r) => setTimeout(r, 3000));
        }
    })();
    const output: string[] = [];
    try {
        upRun = await up(s.stack, { onOutput: (o) => output.push(o) });
    } catch (e) {
        done = true;
        await watcher;
        throw new Error(
            `pulumi up failed: ${(e as Error).message.slice(-4000)}\n` +
                reports(unhealthy(podStates(kubectl, NAMESPACES))) +
                `\n${s.cluster.logs(15)}`,
        );
    } finally {
        fs.writeFileSync(path.join(RESULTS, "up.log"), output.join(""));
    }
    upSeconds = (Date.now() - start) / 1000;
    fs.writeFileSync(path.join(RESULTS, "up.json"), JSON.stringify(upRun.result.summary, null, 2) + "\n");
    // Jobs without a waiter (the chart's) and the last readiness flips settle within the poll.
    await poll(
        "every pod of the stack Ready",
        300,
        () => (unhealthy(podStates(kubectl, NAMESPACES)).length === 0 ? true : undefined),
        () => reports(unhealthy(podStates(kubectl, NAMESPACES))),
    );
    done = true;
    await watcher;
    allReadySeconds ??= (Date.now() - start) / 1000;
    pods = podStates(kubectl, NAMESPACES);
}, 3_600_000);

afterAll(async () => {
    writeFigures();
    if (s) await stopAll(s);
}, 900_000);

function writeFigures(): void {
    if (!s) return;
    const lines = [
        "# The dev stack on the real node",
        "",
        `Written by test/tiers/cluster-stack.test.ts on ${new Date().toISOString()} (${require("os").cpus().length} CPUs, ` +
            `load average ${require("os")
                .loadavg()
                .map((l: number) => l.toFixed(2))
                .join(" / ")} at the end).`,
        "",
        "| step | seconds |",
        "|---|---|",
        ...Object.entries(s.timings).map(([k, v]) => `| ${k} | ${v.toFixed(1)} |`),
        `| pulumi up (start to end) | ${upSeconds.toFixed(1)} |`,
        `| pulumi up start to every pod Ready | ${allReadySeconds?.toFixed(1) ?? "not reached"} |`,
        `| pulumi up start to the first 200 from /predict (the pipeline untouched) | ${firstPredictSeconds?.toFixed(1) ?? "not reached"} |`,
        "",
        "The mirror's build: `bench/results/mirror-cold.md` (the last run that built any image of it) and " +
            "`mirror-warm.md` (the last run that found them all held).",
        "",
        ...figures,
    ];
    fs.mkdirSync(path.dirname(FIGURES), { recursive: true });
    fs.writeFileSync(FIGURES, lines.join("\n") + "\n");
    // Cold and warm each keep their last figures: a warm run does not overwrite the cold build's times.
    const warm = mirror.every((m) => m.cached);
    const built = mirror.filter((m) => !m.cached).length;
    fs.writeFileSync(
        path.join(path.dirname(FIGURES), `mirror-${warm ? "warm" : "cold"}.md`),
        [
            `# The offline mirror's images, ${warm ? "warm: all held already" : `${built} of ${mirror.length} built this run`}`,
            "",
            `Written by test/tiers/cluster-stack.test.ts on ${new Date().toISOString()} ` +
                `(${require("os").cpus().length} CPUs); the whole step: ${s.timings["mirror images"].toFixed(1)} s.`,
            "",
            "| reference | built from | seconds this run | cached |",
            "|---|---|---|---|",
            ...mirror.map((m) => `| \`${m.reference}\` | ${m.builtFrom} | ${m.seconds.toFixed(1)} | ${m.cached} |`),
            "",
        ].join("\n"),
    );
}

describe("the dev stack on a real node", () => {
    test("the pods are exactly the workloads the program renders for dev", () => {
        const expected = renderedWorkloads(mock);
        const live = [...new Set(pods.map((p) => `${p.namespace} ${p.owner}`))].sort();
        // Hook Jobs that finished and were deleted by their hook policy leave no pod: only live owners are compared
        // against the rendered set, and every rendered Deployment/StatefulSet/Cluster must have a pod.
        const missing = expected.filter((w) => !/ Job\//.test(w) && !live.includes(w));
        const unexpected = live.filter((w) => !expected.includes(w));
        expect({ missing, unexpected }).toEqual({ missing: [], unexpected: [] });
    });

    test("every pod Running and Ready with at most one restart; only the named exceptions are not", () => {
        const bad = unhealthy(pods);
        if (bad.length) throw new Error(reports(bad));
        const exceptions = pods.filter(isException);
        for (const p of exceptions)
            log(`[cluster-stack] EXCEPTION pod ${p.namespace}/${p.name}: ${p.problems.join("; ")}`);
        expect(exceptions.map((p) => p.namespace === "cert-manager" || /grafana/.test(p.owner))).not.toContain(false);
    });
});

/**
 * A shell in a pod's container with `input` on stdin (secrets travel on stdin, never in argv or the log) and `args`
 * as its positional parameters ($1...).
 */
function shell(ns: string, pod: string, container: string, script: string, input = "", args: string[] = []): string {
    return kubectl(["exec", "-i", "-n", ns, pod, "-c", container, "--", "sh", "-c", script, "sh", ...args], input);
}

function secretValue(ns: string, name: string, key: string): string {
    const data = JSON.parse(kubectl(["get", "secret", "-n", ns, name, "-o", "json"])).data ?? {};
    if (!data[key]) throw new Error(`Secret ${ns}/${name} has no key ${key}`);
    return Buffer.from(data[key], "base64").toString("utf8");
}

const podOf = (ns: string, owner: RegExp) => {
    const p = pods.find((x) => x.namespace === ns && owner.test(x.owner) && x.phase === "Running");
    if (!p) throw new Error(`no running pod of ${owner} in ${ns}: ${pods.map((x) => x.owner).join(", ")}`);
    return p.name;
};

const mib = (bytes: number) => (bytes / 1048576).toFixed(0);

/** Kubernetes quantity (Mi, Gi, M, plain bytes) in bytes. */
function bytesOf(q: string | undefined): number | undefined {
    if (!q) return undefined;
    const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q);
    if (!m) return undefined;
    const unit = { Ki: 1024, Mi: 1048576, Gi: 1073741824, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ""] ?? 1;
    return Number(m[1]) * unit;
}

describe("figures", () => {
    test("each pod's memory at rest beside its request and limit (bench/results/cluster.md)", async () => {
        const summary = JSON.parse(kubectl(["get", "--raw", "/api/v1/nodes/fx-node/proxy/stats/summary"]));
        const rows: string[] = [];
        let used = 0;
        let requested = 0;
        for (const ns of NAMESPACES) {
            const specs = JSON.parse(kubectl(["get", "pods", "-n", ns, "-o", "json"])).items as any[];
            for (const p of specs) {
                if (p.status?.phase !== "Running") continue;
                const stat = summary.pods.find(
                    (x: any) => x.podRef.namespace === ns && x.podRef.name === p.metadata.name,
                );
                const ws = stat?.memory?.workingSetBytes ?? 0;
                const req = p.spec.containers.reduce(
                    (n: number, c: any) => n + (bytesOf(c.resources?.requests?.memory) ?? 0),
                    0,
                );
                const lim = p.spec.containers.map((c: any) => bytesOf(c.resources?.limits?.memory));
                used += ws;
                requested += req;
                rows.push(
                    `| ${ns}/${p.metadata.name} | ${mib(ws)} | ${mib(req)} | ${lim.includes(undefined) ? "none (a container has no limit)" : mib(lim.reduce((a: number, b: number) => a + b, 0))} |`,
                );
            }
        }
        figures.push(
            "## Memory at rest (working set, kubelet's summary API), once every pod is Ready",
            "",
            "| pod | used MiB | requested MiB | limit MiB |",
            "|---|---|---|---|",
            ...rows.sort(),
            `| **all** | **${mib(used)}** | **${mib(requested)}** | |`,
            "",
        );
        expect(rows.length).toBeGreaterThan(10);
        expect(used).toBeGreaterThan(0);
    });
    test("a new FastAPI replica: scheduled, pulled from the local registry, started, Ready (bench/replica_bench.py)", () => {
        // The node holds the image from the first replica: removed from its containerd, the new replica pulls it
        // through the registry as a node without it would.
        const spec = JSON.parse(kubectl(["get", "deployment", "-n", "fx-ml", "fastapi", "-o", "json"]));
        const image = spec.spec.template.spec.containers[0].image as string;
        s!.cluster.ctr(["images", "rm", image]);
        const r = spawnSync("python3", ["bench/replica_bench.py", "--context", s!.cluster.api.context], {
            cwd: ROOT,
            encoding: "utf8",
            timeout: 660_000,
            env: {
                ...process.env,
                KUBECONFIG: s!.cluster.kubeconfig,
                PATH: `${path.dirname(tool("kubectl"))}:${process.env.PATH}`,
            },
        });
        if (r.status !== 0)
            throw new Error(`replica_bench: ${r.stderr}\n${reports(unhealthy(podStates(kubectl, ["fx-ml"])))}`);
        const result = JSON.parse(fs.readFileSync(path.join(ROOT, "bench", "results", "replica.json"), "utf8"));
        figures.push(
            "## A new FastAPI replica on the node (bench/replica_bench.py, image removed from the node first)",
            "",
            "| step | figure |",
            "|---|---|",
            ...Object.entries(result).map(([k, v]) => `| ${k} | ${v} |`),
            "",
        );
        expect(result.pull).toMatch(/^[0-9.]+m?s$/); // pulled, not "already present"
        expect(result.scale_to_ready_s).toBeGreaterThan(0);
    }, 700_000);
});

describe("what the stack's pieces hold", () => {
    test("every Helm release deployed", () => {
        const r = spawnSync(helmBinary(), ["list", "-A", "-o", "json", "--kubeconfig", s!.cluster.kubeconfig], {
            encoding: "utf8",
        });
        const releases = JSON.parse(r.stdout) as { name: string; namespace: string; status: string }[];
        expect(releases.map((x) => `${x.namespace}/${x.name} ${x.status}`).sort()).toEqual([
            "cert-manager/cert-manager deployed",
            "cnpg-system/cnpg deployed",
            "fx-ml-monitoring/grafana deployed",
            "fx-ml-monitoring/prometheus deployed",
            "fx-ml-monitoring/statsd-exporter deployed",
            "fx-ml/fx-postgres deployed",
            "fx-ml/fx-redis deployed",
        ]);
    });

    test("every Job complete, every Service with ready endpoints, every PVC bound (but the exceptions')", () => {
        const problems: string[] = [];
        for (const ns of NAMESPACES.filter((n) => !EXCEPTION_NAMESPACES.includes(n))) {
            const jobs = JSON.parse(kubectl(["get", "jobs", "-n", ns, "-o", "json"])).items as any[];
            for (const j of jobs)
                if (!(j.status?.conditions ?? []).some((c: any) => c.type === "Complete" && c.status === "True"))
                    problems.push(`Job ${ns}/${j.metadata.name} not complete: ${JSON.stringify(j.status)}`);
            const services = JSON.parse(kubectl(["get", "services", "-n", ns, "-o", "json"])).items as any[];
            const slices = JSON.parse(kubectl(["get", "endpointslices", "-n", ns, "-o", "json"])).items as any[];
            for (const svc of services) {
                if (/grafana/.test(svc.metadata.name)) continue; // exception: Grafana's pod cannot run here
                const ready = slices
                    .filter((e) => e.metadata.labels?.["kubernetes.io/service-name"] === svc.metadata.name)
                    .flatMap((e) => e.endpoints ?? [])
                    .filter((e: any) => e.conditions?.ready);
                if (ready.length === 0) problems.push(`Service ${ns}/${svc.metadata.name}: no ready endpoint`);
            }
            const pvcs = JSON.parse(kubectl(["get", "pvc", "-n", ns, "-o", "json"])).items as any[];
            for (const c of pvcs)
                if (c.status?.phase !== "Bound") problems.push(`PVC ${ns}/${c.metadata.name}: ${c.status?.phase}`);
        }
        expect(problems).toEqual([]);
    });

    test("Postgres: each role logs in with its generated password and owns its database", () => {
        const pod = podOf("fx-ml", /^Cluster\/fx-postgres$/);
        const owners: Record<string, string> = {};
        for (const role of ["airflow", "mlflow", "feast"]) {
            const user = secretValue("fx-ml", `pg-${role}`, "username");
            const password = secretValue("fx-ml", `pg-${role}`, "password");
            // Over TCP with the password (scram-sha-256), as the services connect; the password on stdin.
            const out = shell(
                "fx-ml",
                pod,
                "postgres",
                'read -r PGPASSWORD; export PGPASSWORD; psql -h 127.0.0.1 -U "$1" -d "$1" -tAc ' +
                    "\"select current_user || ' ' || pg_get_userbyid(datdba) from pg_database where datname = current_database()\"",
                `${password}\n`,
                [role],
            );
            owners[role] = out.trim();
            expect(user).toBe(role);
        }
        expect(owners).toEqual({ airflow: "airflow airflow", mlflow: "mlflow mlflow", feast: "feast feast" });
        // A wrong password is refused.
        expect(() =>
            shell(
                "fx-ml",
                pod,
                "postgres",
                "read -r PGPASSWORD; export PGPASSWORD; psql -h 127.0.0.1 -U mlflow -d mlflow -c 'select 1'",
                "wrong\n",
            ),
        ).toThrow(/password authentication failed for user "mlflow"/);
    });

    test("Redis: AUTH with the generated password, the append-only file on", () => {
        const pod = podOf("fx-ml", /^Deployment\/fx-redis$|^StatefulSet\/fx-redis$/);
        const password = secretValue("fx-ml", "redis-auth", "password");
        const info = shell(
            "fx-ml",
            pod,
            "redis-server",
            "read -r REDISCLI_AUTH; export REDISCLI_AUTH; redis-cli INFO persistence",
            `${password}\n`,
        );
        expect(info).toMatch(/^aof_enabled:1\r?$/m);
        const refused = shell("fx-ml", pod, "redis-server", "REDISCLI_AUTH=wrong redis-cli PING 2>&1 || true");
        expect(refused).toMatch(/WRONGPASS|NOAUTH/);
    });

    test("NetworkPolicies: a flow the stack needs works, one they forbid is refused", () => {
        const pod = podOf("fx-ml", /^Deployment\/fastapi$/);
        const connect = (host: string, port: number) =>
            shell(
                "fx-ml",
                pod,
                "fastapi",
                `python -c "import socket; socket.create_connection(('${host}', ${port}), timeout=5); print('connected')" 2>&1 | tail -1`,
            ).trim();
        // FastAPI reads the model registry (allowed: allow-mlflow) ...
        expect(connect("mlflow.fx-ml.svc.cluster.local", 5000)).toBe("connected");
        // ... and is no client of Airflow's execution API (allow-airflow-webserver admits only Airflow's own pods).
        expect(connect("airflow-webserver.fx-ml.svc.cluster.local", 8080)).toMatch(/timed out|refused/);
    });
});

/** JSON over HTTP through a port-forward; the status and body, never thrown for a non-2xx answer. */
async function http(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    const text = await r.text();
    let body: any = text;
    try {
        body = JSON.parse(text);
    } catch {
        // not JSON: kept as text
    }
    return { status: r.status, body };
}

describe("the pipeline end to end, untouched after the up (issue: predictions without anyone touching anything)", () => {
    const forwards: Forward[] = [];
    const forward = async (ns: string, svc: string, port: number) => {
        const f = await portForward(s!.cluster.kubeconfig, ns, svc, port);
        forwards.push(f);
        return f.url;
    };
    afterAll(() => forwards.forEach((f) => f.close()));

    let airflow: string;
    let token: string;
    const api = async (p: string) => {
        const r = await http(`${airflow}/api/v2${p}`, { headers: { authorization: `Bearer ${token}` } });
        if (r.status !== 200) throw new Error(`Airflow GET ${p}: ${r.status} ${JSON.stringify(r.body)}`);
        return r.body;
    };
    /** Each DAG's runs and their task instances' states, for failure messages and the assertions. */
    const dagStory = async () => {
        const out: Record<string, { run: string; state: string; tasks: Record<string, string> }[]> = {};
        for (const dag of ["fx_market_pipeline", "fx_daily_training"]) {
            const runs = (await api(`/dags/${dag}/dagRuns?order_by=-run_after&limit=5`)).dag_runs as any[];
            out[dag] = [];
            for (const r of runs) {
                const tis = (await api(`/dags/${dag}/dagRuns/${encodeURIComponent(r.dag_run_id)}/taskInstances`))
                    .task_instances as any[];
                out[dag].push({
                    run: r.dag_run_id,
                    state: r.state,
                    tasks: Object.fromEntries(
                        tis.map((t) => [
                            `${t.task_id}${t.map_index >= 0 ? `[${t.map_index}]` : ""}@${t.hostname}`,
                            t.state,
                        ]),
                    ),
                });
            }
        }
        return out;
    };

    test("Airflow's REST API takes the generated admin's login; a wrong password is refused", async () => {
        airflow = await forward("fx-ml", "airflow-webserver", 8080);
        const username = secretValue("fx-ml", "airflow-admin", "username");
        const password = secretValue("fx-ml", "airflow-admin", "password");
        const post = (pw: string) =>
            http(`${airflow}/auth/token`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ username, password: pw }),
            });
        const wrong = await post("wrong-password");
        expect(wrong.status).toBe(401);
        const ok = await post(password);
        expect(ok.status).toBe(201);
        token = ok.body.access_token;
        const dags = (await api("/dags")).dags.map((d: any) => `${d.dag_id} paused=${d.is_paused}`);
        expect(dags.sort()).toEqual(["fx_daily_training paused=false", "fx_market_pipeline paused=false"]);
    });

    test("/predict answers 200 from the champion the stack's own pipeline trained, with no trigger from the test", async () => {
        const fastapi = await forward("fx-ml", "fastapi", 8000);
        const predict = () =>
            http(`${fastapi}/predict`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ instrument: "USD_SGD" }),
            });
        const answers: string[] = [];
        const answer = await poll(
            "a 200 from /predict",
            2400 - (Date.now() - upStart) / 1000,
            async () => {
                const r = await predict().catch((e) => ({ status: 0, body: String(e) }));
                const line = `${r.status} ${JSON.stringify(r.body).slice(0, 200)}`;
                if (answers.at(-1) !== line) answers.push(line);
                return r.status === 200 ? r.body : undefined;
            },
            async () =>
                `answers: ${answers.join("\n")}\nDAG runs: ${JSON.stringify(await dagStory().catch(String), null, 1)}\n` +
                reports(podStates(kubectl, ["fx-ml"]).filter((p) => /airflow|fastapi|mlflow/.test(p.owner))),
            10,
        );
        firstPredictSeconds = (Date.now() - upStart) / 1000;
        log(
            `[cluster-stack] first 200 from /predict ${firstPredictSeconds.toFixed(0)} s after the up began; answers: ${answers.join(" | ")}`,
        );

        // The version that answered is MLflow's champion (Postgres backend, read through the MLflow Service).
        const mlflow = await forward("fx-ml", "mlflow", 5000);
        const champion = await http(
            `${mlflow}/api/2.0/mlflow/registered-models/alias?name=fx-usdsgd-predictor&alias=champion`,
        );
        expect(champion.status).toBe(200);
        expect(answer.model_name).toBe("fx-usdsgd-predictor");
        expect(answer.model_version).toBe(String(champion.body.model_version.version));
        expect(answer.instrument).toBe("USD_SGD");
        expect(answer.probability_up).toBeGreaterThanOrEqual(0);
        expect(answer.probability_up).toBeLessThanOrEqual(1);

        // Every task of the runs so far succeeded (or was skipped by design: training released once a day), and the
        // two Celery workers both ran tasks.
        const story = await dagStory();
        const states = Object.values(story).flatMap((runs) =>
            runs.filter((r) => r.state !== "running" && r.state !== "queued").flatMap((r) => Object.values(r.tasks)),
        );
        expect([...new Set(states)].filter((x) => x !== "success" && x !== "skipped")).toEqual([]);
        expect(story.fx_daily_training.some((r) => r.state === "success")).toBe(true);
        const hosts = new Set(
            Object.values(story).flatMap((runs) =>
                runs.flatMap((r) => Object.keys(r.tasks).map((k) => k.split("@")[1])),
            ),
        );
        log(`[cluster-stack] task hosts: ${[...hosts].join(", ")}`);
    }, 2_700_000);

    test("Prometheus: every scrape target up, the alert rules loaded, Airflow's StatsD metrics arrive", async () => {
        const services = JSON.parse(kubectl(["get", "services", "-n", "fx-ml-monitoring", "-o", "json"]))
            .items as any[];
        const server = services.find((x) => /prometheus-server$|^prometheus$/.test(x.metadata.name));
        if (!server)
            throw new Error(`no Prometheus server Service: ${services.map((x) => x.metadata.name).join(", ")}`);
        const prom = await forward("fx-ml-monitoring", server.metadata.name, server.spec.ports[0].port);
        // The jobs Prometheus loaded are the program's alone (none of the chart's defaults), each once.
        const config = await http(`${prom}/api/v1/status/config`);
        const jobs = [...String(config.body.data.yaml).matchAll(/job_name: (\S+)/g)].map((m) => m[1]);
        expect(jobs).toEqual([
            "prometheus",
            "kubernetes-pods",
            "statsd-exporter",
            "kube-state-metrics",
            "kubelet",
            "cloudnative-pg",
        ]);
        // Targets are discovered and scraped on the server's own interval: wait for a full round.
        const down = await poll(
            "every Prometheus target up",
            300,
            async () => {
                const t = await http(`${prom}/api/v1/targets?state=active`);
                const active = t.body.data.activeTargets as any[];
                const bad = active
                    .filter((x) => x.health !== "up")
                    .map((x) => `${x.scrapePool} ${x.scrapeUrl}: ${x.health} ${x.lastError}`);
                return active.length > 0 && bad.length === 0 ? bad : undefined;
            },
            async () => {
                const t = await http(`${prom}/api/v1/targets?state=active`);
                return (t.body.data.activeTargets as any[])
                    .map((x) => `${x.scrapePool} ${x.scrapeUrl}: ${x.health} ${x.lastError}`)
                    .join("\n");
            },
        );
        expect(down).toEqual([]);
        const rules = await http(`${prom}/api/v1/rules?type=alert`);
        const alerts = (rules.body.data.groups as any[]).flatMap((g) => g.rules.map((r: any) => r.name));
        expect(alerts).toEqual(
            expect.arrayContaining([
                "InferenceErrorRatioHigh",
                "InferenceLatencyP99High",
                "FeaturesStale",
                "AirflowSchedulerHeartbeatMissing",
                "AirflowTaskFailed",
                "CeleryWorkerGone",
                "RedisDown",
                "PostgresDown",
                "PersistentVolumeNearlyFull",
            ]),
        );
        const q = await http(
            `${prom}/api/v1/query?query=${encodeURIComponent('airflow_ti_finish_total{state="success"}')}`,
        );
        const series = q.body.data.result as any[];
        expect(series.map((x) => x.metric.dag_id)).toEqual(expect.arrayContaining(["fx_market_pipeline"]));
    }, 600_000);
});

describe("updates and the destroy", () => {
    test("a second up with no change changes nothing", async () => {
        const again = await up(s!.stack);
        const changes = again.result.summary.resourceChanges ?? {};
        expect(Object.keys(changes).filter((k) => k !== "same")).toEqual([]);
    }, 1_800_000);

    test("a replica change (fastapiReplicas 1 -> 2) updates in place", async () => {
        const uidOf = (kind: string, name: string) =>
            JSON.parse(kubectl(["get", kind, "-n", "fx-ml", name, "-o", "json"])).metadata.uid as string;
        const before = { hpa: uidOf("hpa", "fastapi"), deployment: uidOf("deployment", "fastapi") };
        await s!.stack.setConfig("fastapiReplicas", { value: "2" });
        const changed = await up(s!.stack);
        // The autoscaler's floor, and the pod template: two or more replicas are spread over nodes (lib/workload.ts).
        expect(changed.result.summary.resourceChanges).toEqual({ same: expect.any(Number), update: 2 });
        const updated = changed.events
            .map((e) => e.resOutputsEvent?.metadata)
            .filter((m) => m?.op === "update")
            .map((m) => `${m!.type} ${m!.urn.split("::").pop()}`)
            .sort();
        expect(updated).toEqual([
            "kubernetes:apps/v1:Deployment fastapi",
            "kubernetes:autoscaling/v2:HorizontalPodAutoscaler fx-autoscaler",
        ]);
        expect({ hpa: uidOf("hpa", "fastapi"), deployment: uidOf("deployment", "fastapi") }).toEqual(before);
        await poll(
            "two FastAPI pods Ready",
            300,
            () =>
                podStates(kubectl, ["fx-ml"]).filter((p) => /^Deployment\/fastapi$/.test(p.owner) && p.ready).length ===
                2
                    ? true
                    : undefined,
            () => reports(unhealthy(podStates(kubectl, ["fx-ml"]))),
        );
    }, 1_800_000);

    test("pulumi destroy leaves nothing of the stack", async () => {
        await destroy(s!.stack);
        const left = await poll(
            "the stack's namespaces gone",
            300,
            () => {
                const names = JSON.parse(kubectl(["get", "namespaces", "-o", "json"])).items.map(
                    (n: any) => n.metadata.name as string,
                );
                const still = NAMESPACES.filter((n) => names.includes(n));
                return still.length === 0 ? still : undefined;
            },
            () => kubectl(["get", "namespaces"]),
        );
        expect(left).toEqual([]);
        // dev sets retainDataOnDelete false: no volume is kept.
        const pvs = JSON.parse(kubectl(["get", "pv", "-o", "json"])).items.map((p: any) => p.metadata.name);
        expect(pvs).toEqual([]);
    }, 1_800_000);
});
