/**
 * The node tier (`npm run test:cluster`): a real single-node cluster (tools/cluster.ts: control plane, kubelet on its
 * own containerd, CNI bridge, kube-proxy, CoreDNS, local-path-provisioner) runs real pods. Asserted: the node Ready
 * at its address; a Deployment of the probe workload (a STAND-IN image built here, test/node-images/cmd/fx-probe)
 * whose pods pass their readiness probe under Pod Security `restricted` and answer through their Service's ClusterIP
 * from this machine, from another pod (pod -> Service, by ClusterIP and by DNS name) and pod -> pod, with the iptables
 * FORWARD policy at DROP, as dockerd sets it; NetworkPolicies enforced (kube-network-policies, as kind runs it): in a
 * namespace of their own a default-deny ingress policy makes a pod -> pod request time out, a policy allowing that
 * flow lets it through (and through its Service) while the reverse flow stays denied, and an egress policy denies,
 * then allows, the same flow; names resolved by CoreDNS from a pod; a PVC bound by the default StorageClass, written
 * by a pod, its folder created on the node and removed with the claim; after `stop()`, nothing of the node left
 * (tools/cluster.ts leftovers(): the enforcer's nf_tables table and nfqueue included). A failure prints the
 * namespaces' events, the pods' last log lines, the enforcer's last verdicts and the components' logs. Timings go to
 * out/cluster/ and the figures to bench/results/cluster-node.md.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import {
    Cluster,
    CLUSTER_DOMAIN,
    dockerdRuns,
    leftovers,
    MIRROR,
    NETPOL_TABLE,
    NODE_NAME,
    PROBE_IMAGE,
    startCluster,
    waitFor,
} from "../../tools/cluster";
import { startDocker, startRegistry } from "../../tools/docker";
import { podReport, podStates } from "../../tools/node-stack";
import { buildMirrorImages, MIRROR_EXCEPTIONS } from "../../tools/mirror-images";
import { ROOT } from "../../tools/harness";
import { TOOLS_BIN } from "../../tools/stacks";

const RESULTS = path.join(ROOT, "out", "cluster");
const FIGURES = path.join(ROOT, "bench", "results", "cluster-node.md");
const NS = "fx-node-test";
/** Generous, for a busy 2-core machine. */
const POD_TIMEOUT_SECONDS = 240;
/** The NetworkPolicy checks' namespace: its policies touch no other test's pods. */
const NETPOL_NS = "fx-netpol-test";
/** A request's own limit: the enforcer drops a denied connection's first packet, so a denied request times out. */
const REQUEST_SECONDS = 3;
/** How long a policy change may take to be enforced or lifted (informers, then the enforcer's nf_tables sync). */
const POLICY_TIMEOUT_SECONDS = 60;

let cluster: Cluster | undefined;
let folders: string[] = [];
const figures: [string, string][] = [];
const t0 = Date.now();
/** The FORWARD policy this tier found, restored at the end unless dockerd (which sets DROP) runs by then. */
let forwardPolicyBefore: string | undefined;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function forwardPolicy(): string {
    const first = spawnSync("iptables", ["-w", "-S", "FORWARD"], { encoding: "utf8" }).stdout.split("\n")[0];
    return first.replace("-P FORWARD ", "");
}

async function get(urlPath: string): Promise<any> {
    const r = await cluster!.api.request("GET", urlPath);
    if (r.status !== 200) throw new Error(`GET ${urlPath}: HTTP ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
}

/** Waits for `check` (the failure's diagnostics come from withDiagnostics). */
const waitUntil = <T>(what: string, check: () => Promise<T | undefined>, timeout = POD_TIMEOUT_SECONDS) =>
    waitFor(what, timeout, check, () => "");

/** The namespace's events, each pod's last log lines, the node's components' logs. */
function diagnostics(): string {
    if (!cluster) return "(no cluster)";
    const k = (args: string[]) => {
        try {
            return cluster!.kubectl(args);
        } catch (e) {
            return (e as Error).message;
        }
    };
    const out = [
        `--- events (${NS}, ${NETPOL_NS}, kube-system, local-path-storage) ---`,
        ...[NS, NETPOL_NS, "kube-system", "local-path-storage"].map((n) =>
            k(["get", "events", "-n", n, "--sort-by=.lastTimestamp"]),
        ),
        "--- pods ---",
        k(["get", "pods", "-A", "-o", "wide"]),
        "--- NetworkPolicies ---",
        k(["get", "networkpolicies", "-A", "-o", "wide"]),
        `--- the enforcer's nf_tables table inet ${NETPOL_TABLE} ---`,
        spawnSync("nft", ["list", "table", "inet", NETPOL_TABLE], { encoding: "utf8" }).stdout,
        "--- the enforcer's last verdicts, syncs and errors ---",
        enforcerLog()
            .filter((l) => /verdict|Syncing|syncing|Pod |error|rror/.test(l))
            .slice(-40)
            .join("\n"),
    ];
    const pods = k([
        "get",
        "pods",
        "-A",
        "-o",
        'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}',
    ]);
    for (const p of pods.split("\n").filter((l) => l.includes("/"))) {
        const [ns, name] = p.split("/");
        out.push(`--- logs ${p} ---`, k(["logs", "-n", ns, name, "--all-containers", "--tail=20"]));
    }
    out.push(cluster.logs(30));
    return out.join("\n");
}

/** kube-network-policies' log lines (tools/cluster.ts starts it with --v=2: one line per verdict). */
function enforcerLog(): string[] {
    const log = cluster ? path.join(cluster.dir, "kube-network-policies.log") : "";
    return log && fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n") : [];
}

/** Runs `body`; a failure carries the diagnostics. */
async function withDiagnostics(body: () => Promise<void>): Promise<void> {
    try {
        await body();
    } catch (e) {
        throw new Error(`${(e as Error).message}\n${diagnostics()}`);
    }
}

function exec(pod: string, args: string[]): string {
    return cluster!.kubectl(["exec", "-n", NS, pod, "--", "/fx-probe", ...args]);
}

/** GET from this machine; an https URL is verified against `ca`. */
function hostGet(url: string, ca?: Buffer): Promise<string> {
    return new Promise((resolve, reject) => {
        const req = (url.startsWith("https:") ? https : http).get(url, { timeout: 10_000, ca }, (res) => {
            let body = "";
            res.on("data", (c) => (body += c));
            res.on("end", () =>
                res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`)),
            );
        });
        req.on("timeout", () => req.destroy(new Error(`${url}: no answer in 10 s`)));
        req.on("error", reject);
    });
}

const RESTRICTED_CONTAINER = {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
    readOnlyRootFilesystem: true,
};
const RESTRICTED_POD = {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    fsGroup: 65532,
    seccompProfile: { type: "RuntimeDefault" },
};

function manifests(): object[] {
    const labels = { app: "fx-probe" };
    return [
        {
            apiVersion: "v1",
            kind: "Namespace",
            metadata: { name: NS, labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
        },
        {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "fx-probe", namespace: NS },
            spec: {
                replicas: 2,
                selector: { matchLabels: labels },
                template: {
                    metadata: { labels },
                    spec: {
                        securityContext: RESTRICTED_POD,
                        containers: [probeContainer()],
                    },
                },
            },
        },
        {
            apiVersion: "v1",
            kind: "Service",
            metadata: { name: "fx-probe", namespace: NS },
            spec: { selector: labels, ports: [{ name: "http", port: 80, targetPort: "http" }] },
        },
    ];
}

function apply(objects: object[]): void {
    cluster!.kubectl(["apply", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n---\n"));
}

interface Pod {
    name: string;
    ip: string;
}

async function readyPods(): Promise<Pod[]> {
    const list = await get(`/api/v1/namespaces/${NS}/pods?labelSelector=app%3Dfx-probe`);
    return list.items
        .filter((p: any) => p.status?.conditions?.some((c: any) => c.type === "Ready" && c.status === "True"))
        .map((p: any) => ({ name: p.metadata.name, ip: p.status.podIP }));
}

beforeAll(async () => {
    fs.mkdirSync(RESULTS, { recursive: true });
    forwardPolicyBefore = forwardPolicy();
    const start = Date.now();
    cluster = await startCluster();
    folders = [cluster.dir, cluster.api.dir];
    figures.push(["node start (control plane to CoreDNS available)", seconds(Date.now() - start)]);
    for (const [step, s] of Object.entries(cluster.timings)) figures.push([`  ${step}`, `${s.toFixed(1)} s`]);
    fs.writeFileSync(path.join(RESULTS, "timings.json"), JSON.stringify(cluster.timings, null, 2) + "\n");
}, 900_000);

afterAll(async () => {
    try {
        if (cluster) {
            const start = Date.now();
            await cluster.stop();
            figures.push(["stop (pods removed, every process ended, state removed)", seconds(Date.now() - start)]);
        }
    } finally {
        if (forwardPolicyBefore === "ACCEPT" && forwardPolicy() === "DROP" && !dockerdRuns()) {
            spawnSync("iptables", ["-w", "-P", "FORWARD", "ACCEPT"]);
        }
        figures.push(["whole tier", seconds(Date.now() - t0)]);
        // The node's tools as scripts/tools.sh last built them (each build folder keeps its build's seconds).
        for (const t of ["kubelet", "coredns", "local-path-provisioner", "kube-network-policies", "fx-probe"]) {
            const folder = path.dirname(path.dirname(fs.realpathSync(path.join(TOOLS_BIN, t))));
            const file = path.join(folder, "build-seconds");
            const built = fs.existsSync(file) ? `${fs.readFileSync(file, "utf8").trim()} s` : "not recorded";
            figures.push([`scripts/tools.sh build of ${path.basename(folder)} (with the Go caches it found)`, built]);
        }
        const lines = [
            "# The node tier (test/tiers/cluster.test.ts)",
            "",
            `Written by the test on ${new Date().toISOString()}; ${require("os").cpus().length} CPUs.`,
            "",
            "| what | time |",
            "|---|---|",
            ...figures.map(([what, t]) => `| ${what} | ${t} |`),
            "",
        ];
        fs.mkdirSync(path.dirname(FIGURES), { recursive: true });
        fs.writeFileSync(FIGURES, lines.join("\n"));
        fs.writeFileSync(path.join(RESULTS, "figures.json"), JSON.stringify(figures, null, 2) + "\n");
    }
}, 600_000);

test("the node is Ready at its own non-loopback address, with kubelet v1.34.4", async () => {
    await withDiagnostics(async () => {
        const node = await get(`/api/v1/nodes/${NODE_NAME}`);
        expect(node.status.conditions.find((c: any) => c.type === "Ready").status).toBe("True");
        expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: "10.250.0.1" });
        expect(node.status.nodeInfo.kubeletVersion).toBe("v1.34.4");
        // The node's own containerd is this machine's (Debian's 1.6.20 here).
        // `containerd --version`: "containerd github.com/containerd/containerd 1.6.20~ds1 <revision>"
        const version = spawnSync("containerd", ["--version"], { encoding: "utf8" }).stdout.split(" ")[2];
        const containerd = version.match(/^v?(\d+\.\d+\.\d+)/)![1];
        expect(node.status.nodeInfo.containerRuntimeVersion).toBe(`containerd://${containerd}`);
        // The kubernetes Service's endpoint is the advertised address (pods dial 10.96.0.1 and reach it).
        const ep = await get("/api/v1/namespaces/default/endpoints/kubernetes");
        expect(ep.subsets[0].addresses).toEqual([{ ip: "10.250.0.1" }]);
        const svc = await get("/api/v1/namespaces/default/services/kubernetes");
        expect(svc.spec.clusterIP).toBe("10.96.0.1");
        // This machine reaches the server through the Service address too, and its certificate names that address.
        expect(await hostGet("https://10.96.0.1/readyz", fs.readFileSync(path.join(cluster!.api.dir, "ca.crt")))).toBe(
            "ok",
        );
        // The whole Service range goes into the node's port-less bridge, never to the default route.
        for (const ip of ["10.96.0.1", "10.100.7.7", "10.111.255.254"]) {
            expect(spawnSync("ip", ["route", "get", ip], { encoding: "utf8" }).stdout).toMatch(/ dev fxnode0 /);
        }
        expect(spawnSync("ip", ["route", "get", "10.112.0.1"], { encoding: "utf8" }).stdout).not.toMatch(
            / dev fxnode0 /,
        );
    });
});

test("a Deployment's pods pass their readiness probe and answer via the Service from the host, from a pod and pod to pod, with FORWARD at DROP", async () => {
    await withDiagnostics(async () => {
        // dockerd sets the FORWARD policy to DROP; where it does not run, the tier sets it for these checks.
        if (forwardPolicy() !== "DROP") spawnSync("iptables", ["-w", "-P", "FORWARD", "DROP"]);
        expect(forwardPolicy()).toBe("DROP");
        const start = Date.now();
        apply(manifests());
        const pods = await waitUntil("2 fx-probe pods Ready", async () => {
            const ready = await readyPods();
            return ready.length === 2 ? ready : undefined;
        });
        figures.push(["Deployment applied to 2 pods Ready (readiness probe passed)", seconds(Date.now() - start)]);
        const svc = await get(`/api/v1/namespaces/${NS}/services/fx-probe`);
        const clusterIP: string = svc.spec.clusterIP;
        expect(clusterIP).toMatch(/^10\.(9[6-9]|10[0-9]|11[01])\./); // in 10.96.0.0/12
        for (const p of pods) expect(p.ip).toMatch(/^10\.244\.0\.\d+$/);
        const names = pods.map((p) => `fx-probe ${p.name}\n`);

        // host -> ClusterIP (kube-proxy's DNAT), until the endpoints reach kube-proxy
        const fromHost = await waitUntil("host -> ClusterIP", () => hostGet(`http://${clusterIP}/`));
        expect(names).toContain(fromHost);
        // pod -> Service by ClusterIP, and by its DNS name through CoreDNS
        const [a, b] = pods;
        expect(names).toContain(exec(a.name, ["get", `http://${clusterIP}/`]));
        expect(names).toContain(exec(a.name, ["get", `http://fx-probe.${NS}.svc.${CLUSTER_DOMAIN}/`]));
        // pod -> pod, both ways
        expect(exec(a.name, ["get", `http://${b.ip}:8080/`])).toBe(`fx-probe ${b.name}\n`);
        expect(exec(b.name, ["get", `http://${a.ip}:8080/`])).toBe(`fx-probe ${a.name}\n`);
        // A port nothing listens on is refused, not answered: the checks above can fail.
        expect(() => exec(a.name, ["get", `http://${b.ip}:8081/`, "3"])).toThrow(/refused|timeout|deadline/i);
        expect(forwardPolicy()).toBe("DROP");
    });
});

/** A pod of the NetworkPolicy checks: the probe workload serving on 8080, labelled with its role. */
/** The probe server's container (fx-probe serve on :8080, ready on /healthz), restricted, with requests and limits. */
function probeContainer(): object {
    return {
        name: "probe",
        image: PROBE_IMAGE,
        imagePullPolicy: "Never",
        args: ["serve", "-addr", ":8080"],
        ports: [{ name: "http", containerPort: 8080 }],
        readinessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 2 },
        resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
        securityContext: RESTRICTED_CONTAINER,
    };
}

function netpolPod(role: string): object {
    return {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: role, namespace: NETPOL_NS, labels: { role } },
        spec: {
            securityContext: RESTRICTED_POD,
            containers: [probeContainer()],
        },
    };
}

const networkPolicy = (name: string, spec: object) => ({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace: NETPOL_NS },
    spec,
});

interface Outcome {
    ok: boolean;
    out: string;
    /** When the request started, ms since the epoch. */
    at: number;
}

/** One request from pod `from` (REQUEST_SECONDS at most): its answer, or the error it failed with. */
function request(from: string, url: string): Outcome {
    const at = Date.now();
    try {
        const out = cluster!.kubectl([
            "exec",
            "-n",
            NETPOL_NS,
            from,
            "--",
            "/fx-probe",
            "get",
            url,
            String(REQUEST_SECONDS),
        ]);
        return { ok: true, out, at };
    } catch (e) {
        return { ok: false, out: (e as Error).message, at };
    }
}

/**
 * Repeats the request until it is answered (`allowed`) or fails; returns that request's outcome and the seconds from
 * `since` to its start (an upper bound of the time the policy change took to be enforced).
 */
async function untilFlow(
    from: string,
    url: string,
    allowed: boolean,
    since: number,
): Promise<{ outcome: Outcome; seconds: number; attempts: number }> {
    let attempts = 0;
    const outcome = await waitUntil(
        `${from} -> ${url} ${allowed ? "answered" : "denied"}`,
        async () => {
            const o = request(from, url);
            attempts++;
            if (o.ok !== allowed) throw new Error(`last: ${o.ok ? `answered ${o.out.trim()}` : o.out.trim()}`);
            return o;
        },
        POLICY_TIMEOUT_SECONDS,
    );
    return { outcome, seconds: (outcome.at - since) / 1000, attempts };
}

/** A policy change's figure: from the start of its `kubectl apply` to the start of the first request that saw it. */
const policyFigure = (what: string, r: { seconds: number; attempts: number }): [string, string] => [
    `NetworkPolicy ${what} (apply to the first request that saw it)`,
    `${r.seconds.toFixed(1)} s (request ${r.attempts})`,
];

/** A denied request: dropped by the enforcer, so it timed out (a refused port would say "connection refused"). */
const DENIED = /Client\.Timeout exceeded|context deadline exceeded/;

test("NetworkPolicies are enforced: default-deny ingress denies pod -> pod, an allow policy lets that flow through, an egress policy denies then allows it", async () => {
    await withDiagnostics(async () => {
        apply([
            {
                apiVersion: "v1",
                kind: "Namespace",
                metadata: { name: NETPOL_NS, labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
            },
            netpolPod("client"),
            netpolPod("server"),
            {
                apiVersion: "v1",
                kind: "Service",
                metadata: { name: "server", namespace: NETPOL_NS },
                spec: { selector: { role: "server" }, ports: [{ name: "http", port: 80, targetPort: "http" }] },
            },
        ]);
        const ips = await waitUntil("the client and server pods Ready", async () => {
            const list = await get(`/api/v1/namespaces/${NETPOL_NS}/pods`);
            const ready = list.items.filter((p: any) =>
                p.status?.conditions?.some((c: any) => c.type === "Ready" && c.status === "True"),
            );
            return ready.length === 2
                ? Object.fromEntries(ready.map((p: any) => [p.metadata.name, p.status.podIP as string]))
                : undefined;
        });
        const toServer = `http://${ips.server}:8080/`;
        const toClient = `http://${ips.client}:8080/`;
        // No policy yet: both flows are answered.
        expect(request("client", toServer)).toMatchObject({ ok: true, out: "fx-probe server\n" });
        expect(request("server", toClient)).toMatchObject({ ok: true, out: "fx-probe client\n" });

        // Default deny for ingress: every pod of the namespace is selected, no ingress allowed.
        let since = Date.now();
        apply([networkPolicy("default-deny-ingress", { podSelector: {}, policyTypes: ["Ingress"] })]);
        const denied = await untilFlow("client", toServer, false, since);
        figures.push(policyFigure("default-deny ingress: pod -> pod denied", denied));
        expect(denied.outcome.out).toMatch(DENIED);
        expect(request("server", toClient)).toMatchObject({ ok: false, out: expect.stringMatching(DENIED) });
        // The enforcer dropped them: its verdict lines say so.
        expect(enforcerLog().some((l) => /Finished syncing packet.*verdict="drop"/.test(l))).toBe(true);

        // Allow client -> server on the server's port: that flow is answered, pod to pod and through the Service;
        // the reverse flow stays denied.
        since = Date.now();
        apply([
            networkPolicy("server-from-client", {
                podSelector: { matchLabels: { role: "server" } },
                policyTypes: ["Ingress"],
                ingress: [{ from: [{ podSelector: { matchLabels: { role: "client" } } }], ports: [{ port: 8080 }] }],
            }),
        ]);
        const allowed = await untilFlow("client", toServer, true, since);
        figures.push(policyFigure("allowing that flow: answered", allowed));
        expect(allowed.outcome.out).toBe("fx-probe server\n");
        expect(request("client", `http://server.${NETPOL_NS}.svc.${CLUSTER_DOMAIN}/`)).toMatchObject({
            ok: true,
            out: "fx-probe server\n",
        });
        expect(request("server", toClient)).toMatchObject({ ok: false, out: expect.stringMatching(DENIED) });

        // Egress: the client may send nothing, so the flow its ingress policy allows is denied at the source...
        since = Date.now();
        apply([
            networkPolicy("client-deny-egress", {
                podSelector: { matchLabels: { role: "client" } },
                policyTypes: ["Egress"],
            }),
        ]);
        const egressDenied = await untilFlow("client", toServer, false, since);
        figures.push(policyFigure("denying the client's egress: the flow denied", egressDenied));
        expect(egressDenied.outcome.out).toMatch(DENIED);
        // ... until an egress rule allows it.
        since = Date.now();
        apply([
            networkPolicy("client-egress-to-server", {
                podSelector: { matchLabels: { role: "client" } },
                policyTypes: ["Egress"],
                egress: [{ to: [{ podSelector: { matchLabels: { role: "server" } } }], ports: [{ port: 8080 }] }],
            }),
        ]);
        const egressAllowed = await untilFlow("client", toServer, true, since);
        figures.push(policyFigure("allowing that egress: answered", egressAllowed));
        expect(egressAllowed.outcome.out).toBe("fx-probe server\n");
        expect(request("server", toClient)).toMatchObject({ ok: false, out: expect.stringMatching(DENIED) });
        // A pod that sends at once, before the API server has published its address: the enforcer looks up a
        // source no pod holds yet. It once died there (a nil NRI lookup with NRI off), and then every queued packet
        // was dropped, cluster DNS included. Now the newcomer is denied (the server admits only the client) and the
        // enforcer lives on.
        apply([
            {
                apiVersion: "v1",
                kind: "Pod",
                metadata: { name: "newcomer", namespace: NETPOL_NS, labels: { role: "newcomer" } },
                spec: {
                    restartPolicy: "Never",
                    securityContext: RESTRICTED_POD,
                    containers: [
                        {
                            name: "probe",
                            image: PROBE_IMAGE,
                            imagePullPolicy: "Never",
                            args: ["get", toServer, String(REQUEST_SECONDS)],
                            resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
                            securityContext: RESTRICTED_CONTAINER,
                        },
                    ],
                },
            },
        ]);
        const newcomer = await waitUntil("the newcomer's request ended", async () => {
            const p = await get(`/api/v1/namespaces/${NETPOL_NS}/pods/newcomer`);
            return ["Succeeded", "Failed"].includes(p.status?.phase) ? p.status.phase : undefined;
        });
        expect(newcomer).toBe("Failed");
        expect(cluster!.kubectl(["logs", "-n", NETPOL_NS, "newcomer"])).toMatch(DENIED);
        expect(request("client", toServer)).toMatchObject({ ok: true, out: "fx-probe server\n" });
        expect(enforcerLog().filter((l) => /panic|SIGSEGV/.test(l))).toEqual([]);
        // kubelet's probes come from the node (root), which the enforcer leaves alone: both pods stayed Ready.
        const pods = await get(`/api/v1/namespaces/${NETPOL_NS}/pods`);
        expect(
            pods.items
                .filter((p: any) => p.metadata.name !== "newcomer")
                .map((p: any) => [
                    p.metadata.name,
                    p.status.conditions.find((c: any) => c.type === "Ready").status,
                    p.status.containerStatuses[0].restartCount,
                ]),
        ).toEqual([
            ["client", "True", 0],
            ["server", "True", 0],
        ]);
        cluster!.kubectl(["delete", "namespace", NETPOL_NS, "--wait=false"]);
    });
});

test("CoreDNS resolves Services for pods (<svc>.<ns>.svc.cluster.local, short names, the kubernetes Service)", async () => {
    await withDiagnostics(async () => {
        const [a] = await readyPods();
        const svc = await get(`/api/v1/namespaces/${NS}/services/fx-probe`);
        expect(exec(a.name, ["lookup", `fx-probe.${NS}.svc.cluster.local`]).trim()).toBe(svc.spec.clusterIP);
        expect(exec(a.name, ["lookup", "fx-probe"]).trim()).toBe(svc.spec.clusterIP);
        expect(exec(a.name, ["lookup", "kubernetes.default"]).trim()).toBe("10.96.0.1");
        expect(exec(a.name, ["lookup", "kube-dns.kube-system.svc.cluster.local"]).trim()).toBe("10.96.0.10");
        // A pod reaches the API server as kubernetes.default (10.96.0.1 -> the node's address), its certificate
        // verified against the CA the pod is given (kube-root-ca.crt, published by kube-controller-manager).
        const ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
        expect(exec(a.name, ["get", "https://kubernetes.default.svc/readyz", "10", ca])).toBe("ok");
        expect(() => exec(a.name, ["lookup", `nothing-here.${NS}.svc.cluster.local`])).toThrow(/no such host/);
    });
});

test("a container whose command exits is named with its exit and its log (the stack tier's failure report)", async () => {
    await withDiagnostics(async () => {
        apply([
            {
                apiVersion: "v1",
                kind: "Pod",
                metadata: { name: "fx-exits", namespace: NS },
                spec: {
                    securityContext: RESTRICTED_POD,
                    containers: [
                        {
                            name: "exits",
                            image: PROBE_IMAGE,
                            imagePullPolicy: "Never",
                            args: ["exit-on-purpose"],
                            resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
                            securityContext: RESTRICTED_CONTAINER,
                        },
                    ],
                },
            },
        ]);
        const kubectl = (args: string[]) => cluster!.kubectl(args);
        const pod = await waitUntil("the exiting container restarted once", async () =>
            podStates(kubectl, [NS]).find(
                (p) => p.name === "fx-exits" && p.restarts >= 1 && !p.ready && p.problems.length > 0,
            ),
        );
        expect(pod.ready).toBe(false);
        expect(pod.owner).toBe("(none)");
        expect(pod.problems.join(" ")).toMatch(/^exits: .*last exit 1 \(Error\)/);
        const report = podReport(kubectl, pod);
        expect(report).toMatch(/^=== pod fx-node-test\/fx-exits \(\(none\)\): Running, ready false, \d+ restarts$/m);
        expect(report).toContain('fx-probe: unknown command "exit-on-purpose"');
        cluster!.kubectl(["delete", "pod", "-n", NS, "fx-exits", "--wait=false"]);
    });
});

test("a PVC of the default StorageClass is bound, written by a pod, and its volume removed with it", async () => {
    await withDiagnostics(async () => {
        const start = Date.now();
        const text = `written by a pod at ${new Date().toISOString()}`;
        apply([
            {
                apiVersion: "v1",
                kind: "PersistentVolumeClaim",
                metadata: { name: "data", namespace: NS },
                spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "64Mi" } } },
            },
            {
                apiVersion: "v1",
                kind: "Pod",
                metadata: { name: "writer", namespace: NS },
                spec: {
                    restartPolicy: "Never",
                    securityContext: RESTRICTED_POD,
                    containers: [
                        {
                            name: "writer",
                            image: PROBE_IMAGE,
                            imagePullPolicy: "Never",
                            args: ["write", "/data/hello.txt", text],
                            volumeMounts: [{ name: "data", mountPath: "/data" }],
                            resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
                            securityContext: RESTRICTED_CONTAINER,
                        },
                    ],
                    volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data" } }],
                },
            },
        ]);
        const phase = await waitUntil("writer pod finished", async () => {
            const p = (await get(`/api/v1/namespaces/${NS}/pods/writer`)).status.phase;
            return p === "Succeeded" || p === "Failed" ? p : undefined;
        });
        expect(phase).toBe("Succeeded");
        figures.push(["PVC created to bound, written by a pod (pod Succeeded)", seconds(Date.now() - start)]);
        const pvc = await get(`/api/v1/namespaces/${NS}/persistentvolumeclaims/data`);
        expect(pvc.status.phase).toBe("Bound");
        expect(pvc.spec.storageClassName).toBe("standard");
        const pv = await get(`/api/v1/persistentvolumes/${pvc.spec.volumeName}`);
        // The volume is a folder on the node that the provisioner's helper pod made; the pod's write is in it.
        const folder: string = pv.spec.hostPath?.path ?? pv.spec.local?.path;
        expect(folder.startsWith(path.join(cluster!.dir, "local-path-provisioner", "volumes") + "/")).toBe(true);
        expect(fs.readFileSync(path.join(folder, "hello.txt"), "utf8")).toBe(text);
        expect(cluster!.kubectl(["logs", "-n", NS, "writer"])).toBe(text);

        cluster!.kubectl(["delete", "pod", "-n", NS, "writer", "--wait=true", "--timeout=120s"]);
        cluster!.kubectl(["delete", "pvc", "-n", NS, "data", "--wait=true", "--timeout=120s"]);
        await waitUntil("the PV and its folder removed (reclaim policy Delete)", async () => {
            const r = await cluster!.api.request("GET", `/api/v1/persistentvolumes/${pv.metadata.name}`);
            return r.status === 404 && !fs.existsSync(folder) ? true : undefined;
        });
    });
});

test("an image named by its upstream registry is pulled through the mirror from the local registry, and nothing else is reached", async () => {
    await withDiagnostics(async () => {
        // The images tier's registry (localhost:5001, the dev stack's registryServer): the node's only source.
        const registry = await startRegistry(5001);
        try {
            // The probe image, pushed to the mirror under a path of its own and removed from the node's store.
            const local = `${MIRROR}/fx-node-test/fx-probe:mirror`;
            cluster!.ctr(["images", "tag", "--force", PROBE_IMAGE, local]);
            cluster!.ctr(["images", "push", "--plain-http", local]);
            cluster!.ctr(["images", "rm", local]);
            const pushed = await fetch(`http://${MIRROR}/v2/fx-node-test/fx-probe/manifests/mirror`, {
                method: "HEAD",
                headers: {
                    Accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
                },
            });
            const digest = pushed.headers.get("docker-content-digest");
            expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
            const pod = (name: string, image: string) => ({
                apiVersion: "v1",
                kind: "Pod",
                metadata: { name, namespace: NS },
                spec: {
                    restartPolicy: "Never",
                    securityContext: RESTRICTED_POD,
                    containers: [
                        {
                            name: "probe",
                            image,
                            imagePullPolicy: "Always",
                            args: ["write", "/scratch/ok.txt", "pulled"],
                            volumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
                            resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
                            securityContext: RESTRICTED_CONTAINER,
                        },
                    ],
                    volumes: [{ name: "scratch", emptyDir: {} }],
                },
            });
            // docker.io, as a chart names its images: resolved to the mirror, references unchanged.
            apply([
                pod("mirrored", "docker.io/fx-node-test/fx-probe:mirror"),
                pod("absent", "quay.io/fx-node-test/not-there:1"),
            ]);
            const phase = await waitUntil("the mirrored pod finished", async () => {
                const p = (await get(`/api/v1/namespaces/${NS}/pods/mirrored`)).status.phase;
                return p === "Succeeded" || p === "Failed" ? p : undefined;
            });
            expect(phase).toBe("Succeeded");
            const status = (await get(`/api/v1/namespaces/${NS}/pods/mirrored`)).status.containerStatuses[0];
            expect(status.imageID).toBe(`docker.io/fx-node-test/fx-probe@${digest}`);
            // An image the mirror does not hold fails to pull; with no fallback to quay.io, nothing leaves the machine.
            const waiting = await waitUntil("the absent image's pull failed", async () => {
                const c = (await get(`/api/v1/namespaces/${NS}/pods/absent`)).status.containerStatuses?.[0];
                const reason = c?.state?.waiting?.reason;
                return reason === "ErrImagePull" || reason === "ImagePullBackOff" ? c.state.waiting : undefined;
            });
            // The mirror answered "not found": its hosts.toml names no upstream to fall back to.
            expect(waiting.message).toMatch(/quay\.io\/fx-node-test\/not-there:1: not found/);
            for (const registry of ["docker.io", "quay.io", "ghcr.io", "registry.k8s.io", "nvcr.io"]) {
                const hosts = fs.readFileSync(
                    path.join(cluster!.dir, "containerd", "certs.d", registry, "hosts.toml"),
                    "utf8",
                );
                expect([registry, hosts.match(/^server = .*$/m)?.[0], hosts.match(/\[host\."[^"]+"\]/g)]).toEqual([
                    registry,
                    'server = "http://127.0.0.1:5001"',
                    ['[host."http://127.0.0.1:5001"]'],
                ]);
            }
            cluster!.kubectl(["delete", "pod", "-n", NS, "mirrored", "absent", "--wait=true", "--timeout=120s"]);
        } finally {
            await registry.stop();
        }
    });
});

test("the offline mirror's stand-ins are pulled by their upstream references through the mirror and run: CloudNativePG's Postgres operand and Prometheus", async () => {
    await withDiagnostics(async () => {
        const registry = await startRegistry(5001);
        const engine = await startDocker();
        try {
            const start = Date.now();
            const images = await buildMirrorImages(engine, registry.address, {
                log: (s) => process.stdout.write(`${s}\n`),
            });
            figures.push(["offline mirror: every stand-in built (or found) and pushed", seconds(Date.now() - start)]);
            for (const i of images) {
                figures.push([
                    `  ${i.reference} (${i.cached ? "cached" : "built or pushed"})`,
                    seconds(i.seconds * 1000),
                ]);
                if (i.programBuildSeconds !== undefined) {
                    figures.push([
                        "    its program's scripts/tools.sh build (Go caches as found)",
                        `${i.programBuildSeconds} s`,
                    ]);
                }
            }
            process.stdout.write(`[mirror] not available here:\n${Object.entries(MIRROR_EXCEPTIONS).map(([r, why]) => `  ${r}: ${why}`).join("\n")}\n`); // prettier-ignore
            const postgres = "ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie";
            const prometheus = "quay.io/prometheus/prometheus:v3.14.0";
            const digestOf = (ref: string) => images.find((i) => i.reference === ref)!.digest;
            // As the stack runs them: the operand as uid 26 (the Cluster's postgresUID), Prometheus as nobody.
            const pod = (name: string, image: string, command: string[], uid: number) => ({
                apiVersion: "v1",
                kind: "Pod",
                metadata: { name, namespace: NS },
                spec: {
                    restartPolicy: "Never",
                    securityContext: { ...RESTRICTED_POD, runAsUser: uid, runAsGroup: uid, fsGroup: uid },
                    containers: [
                        {
                            name: "main",
                            image,
                            imagePullPolicy: "Always",
                            command,
                            resources: { requests: { cpu: "10m", memory: "32Mi" }, limits: { memory: "128Mi" } },
                            securityContext: RESTRICTED_CONTAINER,
                        },
                    ],
                },
            });
            apply([
                pod("mirror-postgres", postgres, ["postgres", "--version"], 26),
                pod("mirror-prometheus", prometheus, ["/bin/prometheus", "--version"], 65534),
            ]);
            for (const [name, ref, version] of [
                ["mirror-postgres", postgres, /^postgres \(PostgreSQL\) 17\.\d+/],
                ["mirror-prometheus", prometheus, /^prometheus, version 3\.14\.0 /],
            ] as const) {
                const phase = await waitUntil(`${name} finished`, async () => {
                    const p = (await get(`/api/v1/namespaces/${NS}/pods/${name}`)).status.phase;
                    return p === "Succeeded" || p === "Failed" ? p : undefined;
                });
                const status = (await get(`/api/v1/namespaces/${NS}/pods/${name}`)).status.containerStatuses[0];
                const log = cluster!.kubectl(["logs", "-n", NS, name]);
                process.stdout.write(`[mirror] ${ref} -> ${status.imageID}: ${log.trim().split("\n")[0]}\n`);
                expect([phase, status.image, status.imageID]).toEqual([
                    "Succeeded",
                    ref,
                    `${ref.slice(0, ref.lastIndexOf(":"))}@${digestOf(ref)}`,
                ]);
                expect(log).toMatch(version);
            }
            cluster!.kubectl(["delete", "pod", "-n", NS, "mirror-postgres", "mirror-prometheus", "--wait=true", "--timeout=120s"]); // prettier-ignore
        } finally {
            await engine.stop();
            await registry.stop();
        }
    });
});

test("after stop nothing of the node is left: no process, container, mount, network namespace, iptables chain, nf_tables table, nfqueue, link, route or cgroup", async () => {
    expect(cluster).toBeDefined();
    const start = Date.now();
    const c = cluster!;
    cluster = undefined;
    await c.stop();
    figures.push(["stop (pods removed, every process ended, state removed)", seconds(Date.now() - start)]);
    expect(leftovers(folders)).toEqual([]);
    expect(leftovers()).toEqual([]);
    // The host folders the kubelet and CNI make on their own, where this run made them (see HOST_PATHS).
    expect(c.createdHostPaths.filter((p) => fs.existsSync(p))).toEqual([]);
});
