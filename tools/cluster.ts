/**
 * A real single-node Kubernetes cluster for the node tier (`npm run test:cluster`), built on the API server tier
 * (tools/apiserver.ts): etcd, kube-apiserver and kube-controller-manager with every default controller, then
 * kube-scheduler, a kubelet on its own containerd (its own config, root, state and socket under this cluster's
 * folder), the CNI bridge with host-local IPAM, portmap and firewall plugins, kube-proxy in iptables mode, CoreDNS as a
 * pod, a default StorageClass whose volumes local-path-provisioner really creates, and NetworkPolicies enforced by
 * kube-network-policies (what kind runs since v0.24), a host process like the other node components: its nf_tables
 * table `inet kube-network-policies` sends the first packet of each connection of a pod that a policy selects to
 * nfqueue NETPOL_QUEUE, where it accepts or drops it (docs/decisions.md).
 *
 * Addresses: the node is `NODE_ADDRESS` on a bridge of its own with no ports (`fxnode0`), the API server listens on
 * and advertises it, pods sit on `fxcni0` (POD_CIDR) and the whole Service range is routed into `fxnode0`, so no
 * packet for a Service address leaves this machine even when no rule matches it; the pods' bridge does not
 * masquerade and CoreDNS forwards nothing. Every process runs under the API server tier's watchdog; `stop()` removes
 * pods first (so CNI tears their networks down), then every process, mount, network namespace, iptables chain, link,
 * route, cgroup and nf_tables table the node made, and `leftovers()` lists whatever is still there. One node per
 * machine at a time: the bridge names, the ranges and the kubepods cgroups are fixed.
 *
 * Stand-in images (no registry is reachable here), each labelled as such: the pause image, CoreDNS (built by
 * scripts/tools.sh from its Go module), the probe workload and local-path-provisioner's volume helper
 * (test/node-images).
 */
import { ChildProcess, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    ApiServer,
    freePort,
    issueCertificate,
    SERVICE_CIDR,
    startApiServer,
    startProcess,
    stopProcess,
    tail,
    tool,
} from "./apiserver";
import { writeOciArchive } from "./oci-image";

export const NODE_NAME = "fx-node";
/** The node's address: on `NODE_LINK`, a bridge with no ports, so it is reachable from this machine and its pods only. */
export const NODE_ADDRESS = "10.250.0.1";
const NODE_LINK = "fxnode0";
export const POD_CIDR = "10.244.0.0/24";
const POD_GATEWAY = "10.244.0.1";
const CNI_BRIDGE = "fxcni0";
const CNI_NETWORK = "fx-node";
export const DNS_SERVICE_IP = "10.96.0.10";
export const CLUSTER_DOMAIN = "cluster.local";
export const DEFAULT_STORAGE_CLASS = "standard";
const CNI_BIN = "/usr/lib/cni";
/** The enforcer's nf_tables table (family inet, its default name) and the nfqueue it reads (its default number). */
export const NETPOL_TABLE = "kube-network-policies";
export const NETPOL_QUEUE = 100;
/** The kernel's list of bound nfqueues: one line per queue, its number first. */
const NFQUEUE_PROC = "/proc/net/netfilter/nfnetlink_queue";
/** Where a node's folder lists the HOST_PATHS it made, for `stop()` and for a --clean after a killed run. */
const CREATED_HOST_PATHS = "created-host-paths.json";
/**
 * Folders of this machine the kubelet, kube-controller-manager and CNI make whatever they are told (the device-plugin
 * socket folder, the flex-volume folder, libcni's cache, the container log links): `stop()` removes each one this node
 * made (`Cluster.createdHostPaths`).
 */
export const HOST_PATHS = [
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    "/usr/libexec/kubernetes",
];

/** What kubeadm v1.34 runs, under the same references; versions of the real ones in docs/decisions.md. */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1";
export const COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.12.1";
export const PROBE_IMAGE = "localhost/fx-node/fx-probe:stand-in";
/**
 * The air-gapped pattern: every upstream registry the charts and the program name resolves to the local registry
 * (the images tier's, on the dev stack's registryServer port), and to nothing else: no fallback to the upstream, so no
 * pull ever leaves the machine. `<host>/<path>:<tag>` is pulled as `<path>:<tag>` from the mirror.
 */
export const MIRROR = "127.0.0.1:5001";
export const MIRRORED_REGISTRIES = ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "nvcr.io", "localhost:5001"];

/** containerd's hosts.toml for one mirrored registry (config_path layout: certs.d/<registry>/hosts.toml). */
export function mirrorHostsToml(registry: string): string {
    return [
        `# ${registry}: served by the local registry only (air-gapped; written by tools/cluster.ts).`,
        `server = "http://${MIRROR}"`,
        "",
        `[host."http://${MIRROR}"]`,
        '  capabilities = ["pull", "resolve"]',
        "",
    ].join("\n");
}
const VOLUME_HELPER_IMAGE = "localhost/fx-node/fx-volume-helper:stand-in";
const STANDIN = "org.opencontainers.image.description";

/** Seconds to wait for the node and CoreDNS: generous, for a busy 2-core machine. */
const READY_TIMEOUT_SECONDS = 300;

export interface Cluster {
    api: ApiServer;
    kubeconfig: string;
    dir: string;
    /** The HOST_PATHS that did not exist before this node started (`stop()` removes them). */
    createdHostPaths: string[];
    /** Seconds each start step took, in order (for bench/results and out/). */
    timings: Record<string, number>;
    /** Runs kubectl against the cluster; throws with its output when it fails. */
    kubectl(args: string[], input?: string): string;
    /** Runs ctr against the node's containerd (namespace k8s.io); throws with its output when it fails. */
    ctr(args: string[]): string;
    /** The last lines of every component's log, for failure messages. */
    logs(lines?: number): string;
    stop(): Promise<void>;
}

function run(cmd: string, args: string[], input?: string): string {
    const r = spawnSync(cmd, args, { input, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) {
        throw new Error(`${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
    }
    return r.stdout;
}

/** Like `run`, for cleanup: a failure is returned as text rather than thrown. */
function tryRun(cmd: string, args: string[]): string | undefined {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return r.status === 0 ? undefined : `${cmd} ${args.join(" ")}: ${(r.stderr || r.stdout || "").trim()}`;
}

function exists(cmd: string): boolean {
    return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

function linkExists(name: string): boolean {
    return fs.existsSync(`/sys/class/net/${name}`);
}

/**
 * The kernel switches a node needs, as kubeadm's preflight checks them: bridged pod traffic through iptables (kube-proxy's
 * rules for pod -> Service on one bridge) and IPv4 forwarding (the bridge plugin turns it on). dockerd sets both to 1;
 * where this node turned one on, `stop()` turns it back off unless a dockerd runs by then.
 */
const SYSCTLS = ["net/bridge/bridge-nf-call-iptables", "net/ipv4/ip_forward"];

function readSysctl(name: string): string | undefined {
    const f = `/proc/sys/${name}`;
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : undefined;
}

/** Whether a Docker engine runs on this machine (it sets the FORWARD policy and the switches above itself). */
export function dockerdRuns(): boolean {
    return spawnSync("pidof", ["dockerd"]).status === 0;
}

/** Whether the kernel needs kube-network-policies' DNS workaround (netfilter bug 1766, fixed in 6.12). */
function netfilterBug1766Fix(): boolean {
    const [major, minor] = os.release().split(".").map(Number);
    return major < 6 || (major === 6 && minor < 12);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// What the node leaves behind, and removing it

/** Every node folder in the temp folder and the API server folder each recorded (`apiserver-dir`). */
function nodeFolders(): string[] {
    const nodes = fs
        .readdirSync(os.tmpdir())
        .filter((d) => /^fx-cluster-/.test(d))
        .map((d) => path.join(os.tmpdir(), d));
    const apis = nodes
        .map((d) => path.join(d, "apiserver-dir"))
        .filter((f) => fs.existsSync(f))
        .map((f) => fs.readFileSync(f, "utf8").trim());
    return [...nodes, ...apis];
}

const IPTABLES = ["iptables", "ip6tables"].filter(exists);
const TABLES = ["filter", "nat", "mangle", "raw"];
/** kube-proxy's and kubelet's chains (KUBE-*), the CNI plugins' (CNI-*: portmap, firewall, bridge). */
const CHAIN = /^(KUBE-|CNI-)/;

function iptablesRules(cmd: string, table: string): string[] {
    const r = spawnSync(cmd, ["-w", "-t", table, "-S"], { encoding: "utf8" });
    return r.status === 0 ? r.stdout.split("\n").filter(Boolean) : [];
}

/** The node's iptables chains and the rules that jump to them, as `iptables -S` prints them. */
function nodeIptables(): string[] {
    const found: string[] = [];
    for (const cmd of IPTABLES) {
        for (const table of TABLES) {
            for (const rule of iptablesRules(cmd, table)) {
                const m = rule.match(/^-N (\S+)$/) ?? rule.match(/ -j (\S+)/);
                if (m && CHAIN.test(m[1])) found.push(`${cmd} -t ${table} ${rule}`);
            }
        }
    }
    return found;
}

function removeIptables(): string[] {
    const errors: string[] = [];
    for (const cmd of IPTABLES) {
        for (const table of TABLES) {
            const rules = iptablesRules(cmd, table);
            // The jumps into the node's chains from chains that are not its own (FORWARD, PREROUTING, ...).
            for (const rule of rules) {
                const m = rule.match(/^-A (\S+) (.*-j (\S+).*)$/);
                if (m && !CHAIN.test(m[1]) && CHAIN.test(m[3])) {
                    const e = tryRun("sh", ["-c", `${cmd} -w -t ${table} -D ${m[1]} ${m[2]}`]);
                    if (e) errors.push(e);
                }
            }
            const chains = rules
                .map((r) => r.match(/^-N (\S+)$/)?.[1])
                .filter((c): c is string => !!c && CHAIN.test(c));
            for (const c of chains) tryRun(cmd, ["-w", "-t", table, "-F", c]);
            for (const c of chains) {
                const e = tryRun(cmd, ["-w", "-t", table, "-X", c]);
                if (e) errors.push(e);
            }
        }
    }
    return errors;
}

/** The enforcer's nf_tables table, as `nft list tables` prints it, when it is there. */
function netpolTables(): string[] {
    if (!exists("nft")) return [];
    const r = spawnSync("nft", ["list", "tables"], { encoding: "utf8" });
    return r.stdout.split("\n").filter((l) => l.trim() === `table inet ${NETPOL_TABLE}`);
}

/** The enforcer's nfqueue while a process still reads it (the kernel drops its line when the reader is gone). */
function boundNfqueue(): string[] {
    if (!fs.existsSync(NFQUEUE_PROC)) return [];
    return fs
        .readFileSync(NFQUEUE_PROC, "utf8")
        .split("\n")
        .filter((l) => l.trim().split(/\s+/)[0] === String(NETPOL_QUEUE));
}

function mountsUnder(prefixes: string[]): string[] {
    return fs
        .readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[4])
        .filter((m): m is string => !!m && prefixes.some((p) => m === p || m.startsWith(p + "/")));
}

/** The kubepods cgroups kubelet makes (cgroupfs driver), deepest first. */
function kubepodsCgroups(): string[] {
    const found: string[] = [];
    const walk = (d: string) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            if (e.isDirectory()) walk(path.join(d, e.name));
        }
        found.push(d);
    };
    // cgroup v2 (one hierarchy at /sys/fs/cgroup) or v1 (one per controller below it)
    const hierarchies = fs.existsSync("/sys/fs/cgroup") ? ["", ...fs.readdirSync("/sys/fs/cgroup")] : [];
    for (const h of hierarchies) {
        const root = path.join("/sys/fs/cgroup", h, "kubepods");
        if (fs.existsSync(root) && fs.statSync(root).isDirectory()) walk(root);
    }
    return found;
}

/** Processes whose command line names one of `markers` (a cluster's folders, its containerd socket) or that run in a
 * kubepods cgroup (a pod's container). */
function nodeProcesses(markers: string[]): string[] {
    const found: string[] = [];
    for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
        if (Number(pid) === process.pid) continue;
        try {
            const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
            const cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
            if (markers.some((m) => cmdline.includes(m)) || /:\/kubepods(\/|$)/m.test(cgroup)) {
                found.push(`${pid} ${cmdline.slice(0, 160)}`);
            }
        } catch {
            // gone meanwhile
        }
    }
    return found;
}

/**
 * Everything of a node still on this machine: processes, mounts, network namespaces, iptables chains and jumps, the
 * NetworkPolicy enforcer's nf_tables table and nfqueue, links, routes, kubepods cgroups, CNI state, and the folders
 * themselves. `folders`: the cluster's and its API
 * server's folders (every `fx-cluster-*` folder in the temp folder and the API server folder each names, when not given).
 */
export function leftovers(folders?: string[]): string[] {
    const dirs = folders ?? nodeFolders();
    const found: string[] = [];
    found.push(...nodeProcesses(dirs).map((p) => `process ${p}`));
    found.push(...mountsUnder(dirs).map((m) => `mount ${m}`));
    for (const ns of fs.existsSync("/var/run/netns") ? fs.readdirSync("/var/run/netns") : []) {
        if (/^cni-/.test(ns)) found.push(`network namespace /var/run/netns/${ns}`);
    }
    found.push(...nodeIptables().map((r) => `iptables ${r}`));
    found.push(...netpolTables().map((t) => `nf_tables ${t.trim()}`));
    found.push(...boundNfqueue().map((q) => `nfqueue ${q.trim()} (${NFQUEUE_PROC})`));
    for (const link of [NODE_LINK, CNI_BRIDGE]) if (linkExists(link)) found.push(`link ${link}`);
    for (const link of fs.readdirSync("/sys/class/net")) {
        const master = `/sys/class/net/${link}/master`;
        if (fs.existsSync(master) && path.basename(fs.readlinkSync(master)) === CNI_BRIDGE) found.push(`veth ${link}`);
    }
    const routes = run("ip", ["-4", "route", "show", "table", "all"]);
    for (const r of routes.split("\n")) {
        if (r.startsWith(SERVICE_CIDR + " ") || r.startsWith(POD_CIDR + " ") || r.includes(` dev ${CNI_BRIDGE}`)) {
            found.push(`route ${r}`);
        }
    }
    found.push(...kubepodsCgroups().map((c) => `cgroup ${c}`));
    for (const d of ["/var/lib/cni/results", "/var/lib/cni/networks/" + CNI_NETWORK]) {
        for (const f of fs.existsSync(d) ? fs.readdirSync(d) : []) {
            if (d.endsWith(CNI_NETWORK) || f.startsWith(CNI_NETWORK + "-")) found.push(`CNI state ${path.join(d, f)}`);
        }
    }
    found.push(...containerLogLinks(dirs).map((l) => `log link ${l}`));
    for (const d of dirs) if (fs.existsSync(d)) found.push(`folder ${d}`);
    return found;
}

/** kubelet's links in /var/log/containers to the logs of containers it never removed (the pods' folders here). */
function containerLogLinks(folders: string[]): string[] {
    const d = "/var/log/containers";
    return (fs.existsSync(d) ? fs.readdirSync(d) : [])
        .map((f) => path.join(d, f))
        .filter((l) => {
            try {
                const target = fs.readlinkSync(l);
                return folders.some((f) => target.startsWith(f + "/"));
            } catch {
                return false;
            }
        });
}

/** Kills by PID every process `leftovers` would list (shims, pod processes, components), SIGKILL. */
function killNodeProcesses(markers: string[]): void {
    for (const p of nodeProcesses(markers)) {
        try {
            process.kill(Number(p.split(" ")[0]), "SIGKILL");
        } catch {
            // already gone
        }
    }
}

/**
 * Removes what a node left (its processes, mounts, chains, links, routes, cgroups, CNI state, folders); returns what it
 * could not remove. Used by `stop()` after the orderly part, and at start for what a killed run left.
 */
export function removeLeftovers(folders: string[]): string[] {
    const errors: string[] = [];
    for (let i = 0; i < 3 && nodeProcesses(folders).length; i++) {
        killNodeProcesses(folders);
        spawnSync("sleep", ["1"]);
    }
    for (const m of mountsUnder(folders).reverse()) {
        const e = tryRun("umount", [m]) && tryRun("umount", ["-l", m]);
        if (e) errors.push(e);
    }
    for (const ns of fs.existsSync("/var/run/netns") ? fs.readdirSync("/var/run/netns") : []) {
        if (/^cni-/.test(ns)) tryRun("ip", ["netns", "delete", ns]);
    }
    errors.push(...removeIptables());
    // The enforcer removes its table only on SIGINT; the watchdog stops it with SIGTERM, so the table goes here.
    if (netpolTables().length) {
        const e = tryRun("nft", ["delete", "table", "inet", NETPOL_TABLE]);
        if (e) errors.push(e);
    }
    for (const link of [CNI_BRIDGE, NODE_LINK]) if (linkExists(link)) tryRun("ip", ["link", "delete", link]);
    for (const route of [SERVICE_CIDR, POD_CIDR]) tryRun("ip", ["route", "delete", route]);
    for (const c of kubepodsCgroups()) {
        try {
            fs.rmdirSync(c);
        } catch (e) {
            errors.push(`rmdir ${c}: ${(e as Error).message}`);
        }
    }
    fs.rmSync("/var/lib/cni/networks/" + CNI_NETWORK, { recursive: true, force: true });
    for (const f of fs.existsSync("/var/lib/cni/results") ? fs.readdirSync("/var/lib/cni/results") : []) {
        if (f.startsWith(CNI_NETWORK + "-")) fs.rmSync(path.join("/var/lib/cni/results", f), { force: true });
    }
    for (const l of containerLogLinks(folders)) fs.rmSync(l, { force: true });
    for (const d of folders) {
        const f = path.join(d, CREATED_HOST_PATHS);
        if (fs.existsSync(f))
            for (const p of JSON.parse(fs.readFileSync(f, "utf8"))) fs.rmSync(p, { recursive: true, force: true });
    }
    for (const d of folders) {
        if (mountsUnder([d]).length === 0) fs.rmSync(d, { recursive: true, force: true });
    }
    return errors;
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration files

function containerdConfig(dir: string): string {
    const c = path.join(dir, "containerd");
    return `version = 2
root = "${c}/root"
state = "${c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${c}/containerd.sock"

[ttrpc]
  address = "${c}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # This VM refuses a negative oom_score_adj: without this every sandbox fails ("can't get final child's PID").
  restrict_oom_score_adj = true
  # Pods' network namespaces under this node's state folder, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "${c}/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN}"
    conf_dir = "${path.join(dir, "cni", "net.d")}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${c}/certs.d"
`;
}

function cniConfig(dir: string): string {
    return JSON.stringify(
        {
            cniVersion: "1.0.0",
            name: CNI_NETWORK,
            plugins: [
                {
                    type: "bridge",
                    bridge: CNI_BRIDGE,
                    isGateway: true,
                    // No NAT to the outside: pods talk to pods, Services and this machine only.
                    ipMasq: false,
                    // A pod reaches itself through its own Service.
                    hairpinMode: true,
                    ipam: {
                        type: "host-local",
                        ranges: [[{ subnet: POD_CIDR, gateway: POD_GATEWAY }]],
                        routes: [{ dst: "0.0.0.0/0" }],
                        dataDir: path.join(dir, "cni", "ipam"),
                    },
                },
                { type: "portmap", capabilities: { portMappings: true } },
                // Accepts the pods' traffic in FORWARD, whose policy dockerd sets to DROP.
                { type: "firewall", backend: "iptables" },
            ],
        },
        null,
        2,
    );
}

function kubeletConfig(dir: string, port: number, healthzPort: number): string {
    const k = path.join(dir, "kubelet");
    return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${NODE_ADDRESS}
port: ${port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${healthzPort}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${path.join(k, "ca.crt")}
authorization:
  mode: Webhook
tlsCertFile: ${path.join(k, "kubelet.crt")}
tlsPrivateKeyFile: ${path.join(k, "kubelet.key")}
containerRuntimeEndpoint: unix://${path.join(dir, "containerd", "containerd.sock")}
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDNS:
- ${DNS_SERVICE_IP}
clusterDomain: ${CLUSTER_DOMAIN}
resolvConf: ""
podLogsDir: ${path.join(dir, "pod-logs")}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
rotateCertificates: false
serverTLSBootstrap: false
`;
}

/** CoreDNS as kubeadm v1.34 deploys it (RBAC, ConfigMap, Deployment, the kube-dns Service), without `forward`. */
function coreDnsManifests(): string {
    return `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        prometheus :9153
        cache 30
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
        # Port 53 without a capability: a namespaced, safe sysctl.
        sysctls:
        - {name: net.ipv4.ip_unprivileged_port_start, value: "53"}
      containers:
      - name: coredns
        image: ${COREDNS_IMAGE}
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        resources:
          requests: {cpu: 100m, memory: 70Mi}
          limits: {memory: 170Mi}
        volumeMounts:
        - {name: config-volume, mountPath: /etc/coredns, readOnly: true}
        ports:
        - {containerPort: 53, name: dns, protocol: UDP}
        - {containerPort: 53, name: dns-tcp, protocol: TCP}
        - {containerPort: 9153, name: metrics, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
          readOnlyRootFilesystem: true
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 60
          timeoutSeconds: 5
          failureThreshold: 5
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
      volumes:
      - name: config-volume
        configMap:
          name: coredns
          items:
          - {key: Corefile, path: Corefile}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: ${DNS_SERVICE_IP}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
`;
}

const LPP_NAMESPACE = "local-path-storage";
const LPP_SERVICE_ACCOUNT = "local-path-provisioner-service-account";

/** The default StorageClass, as kind names it, and the namespace where local-path-provisioner's helper pods run. */
function storageManifests(): string {
    return `apiVersion: v1
kind: Namespace
metadata: {name: ${LPP_NAMESPACE}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${LPP_SERVICE_ACCOUNT}, namespace: ${LPP_NAMESPACE}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ${DEFAULT_STORAGE_CLASS}
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
`;
}

// ---------------------------------------------------------------------------------------------------------------
// The cluster

/** Builds the four stand-in images and imports them into the node's containerd (namespace k8s.io, unpacked). */
function importImages(dir: string, ctr: (args: string[]) => string): void {
    // One static program each, at the image's root, run as `user`; the label says what it stands in for.
    const image = (ref: string, program: string, name: string, user: string, what: string) => ({
        ref,
        files: [{ src: tool(program), dest: `/${name}`, mode: 0o755 }],
        entrypoint: [`/${name}`],
        user,
        labels: { [STANDIN]: `STAND-IN built by tools/cluster.ts: ${what}` },
    });
    const images = [
        image(PAUSE_IMAGE, "fx-pause", "pause", "65535:65535", "test/node-images/cmd/fx-pause, not Kubernetes' pause"),
        image(
            COREDNS_IMAGE,
            "coredns",
            "coredns",
            "65532:65532",
            "CoreDNS v1.12.1 from its Go module with the plugins of the node's Corefile (scripts/tools.sh)",
        ),
        image(
            PROBE_IMAGE,
            "fx-probe",
            "fx-probe",
            "65532:65532",
            "test/node-images/cmd/fx-probe, the node tier's workload",
        ),
        image(
            VOLUME_HELPER_IMAGE,
            "fx-volume-helper",
            "fx-volume-helper",
            "0:0",
            "test/node-images/cmd/fx-volume-helper, for local-path-provisioner's busybox helper",
        ),
    ];
    for (const spec of images) {
        const archive = path.join(dir, "images", `${spec.ref.replace(/[^a-z0-9.-]+/gi, "_")}.tar`);
        fs.mkdirSync(path.dirname(archive), { recursive: true });
        writeOciArchive(spec, archive);
        ctr(["-n", "k8s.io", "images", "import", "--platform", "linux/amd64", archive]);
    }
}

/**
 * Polls `check` each second until it gives a value; a throw is retried and its message kept for the timeout's,
 * followed by `logs()`; `abort` (outside the retry) throws to give up at once.
 */
export async function waitFor<T>(
    what: string,
    timeoutSeconds: number,
    check: () => Promise<T | undefined>,
    logs: () => string,
    abort: () => void = () => undefined,
): Promise<T> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let last: unknown;
    for (;;) {
        abort();
        try {
            const v = await check();
            if (v !== undefined) return v;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            throw new Error(
                `${what}: not after ${timeoutSeconds} s${last ? ` (${(last as Error).message})` : ""}\n${logs()}`,
            );
        }
        await sleep(1000);
    }
}

/** Starts the cluster and waits until the node is Ready and CoreDNS answers. Root only. */
export async function startCluster(): Promise<Cluster> {
    if (process.getuid?.() !== 0) throw new Error("the node tier runs as root (kubelet, containerd, CNI, iptables)");
    for (const f of ["containerd", "runc", "ctr", "nft"])
        if (!exists(f)) throw new Error(`${f} not found: run scripts/install-test-deps.sh`);
    if (!fs.existsSync(NFQUEUE_PROC)) {
        throw new Error(
            `no ${NFQUEUE_PROC}: the NetworkPolicy enforcer needs nfnetlink_queue (modprobe nfnetlink_queue)`,
        );
    }
    for (const p of ["bridge", "host-local", "portmap", "firewall", "loopback"]) {
        if (!fs.existsSync(path.join(CNI_BIN, p)))
            throw new Error(`CNI plugin ${p} not in ${CNI_BIN}: run scripts/install-test-deps.sh`);
    }
    const before = leftovers();
    if (before.length) {
        throw new Error(
            `an earlier node is still here (run \`npx ts-node tools/cluster.ts --clean\`):\n${before.join("\n")}`,
        );
    }
    const t0 = Date.now();
    const timings: Record<string, number> = {};
    let mark = Date.now();
    const step = (name: string) => {
        timings[name] = (Date.now() - mark) / 1000;
        mark = Date.now();
    };

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-cluster-"));
    const createdHostPaths = HOST_PATHS.filter((p) => !fs.existsSync(p));
    // Kept in the node's folder, so that removeLeftovers (a --clean after a killed run) knows them too.
    fs.writeFileSync(path.join(dir, CREATED_HOST_PATHS), JSON.stringify(createdHostPaths));
    const createdRunContainerd = !fs.existsSync("/run/containerd");
    const sysctlsBefore = new Map(SYSCTLS.map((n) => [n, readSysctl(n)]));
    if (sysctlsBefore.get(SYSCTLS[0]) === undefined) {
        throw new Error("no /proc/sys/net/bridge: load the br_netfilter module (modprobe br_netfilter)");
    }
    const processes: [string, ChildProcess, string][] = [];
    let api: ApiServer | undefined;
    const folders = () => [dir, ...(api ? [api.dir] : [])];
    const logOf = (name: string) => path.join(dir, `${name}.log`);
    const logs = (lines = 30) =>
        [
            ...(api ? [api.logs(lines)] : []),
            ...processes.map(([name, , log]) => `--- ${name} (${log}) ---\n${tail(log, lines)}`),
        ].join("\n");

    const stop = async () => {
        const errors: string[] = [];
        const byName = (n: string) => processes.find(([name]) => name === n)?.[1];
        // No new pods reach the node, then the pods go, so CNI tears each network down (DEL) before anything stops.
        for (const n of ["kube-scheduler", "local-path-provisioner"]) {
            const p = byName(n);
            if (p) await stopProcess(p);
        }
        const kubelet = byName("kubelet");
        if (api && kubelet && kubelet.exitCode === null) {
            try {
                run(tool("kubectl"), ["--kubeconfig", api.kubeconfig, "delete", "pods", "--all", "--all-namespaces",
                    "--grace-period=5", "--wait=false"]); // prettier-ignore
                const ctrArgs = ["--address", path.join(dir, "containerd", "containerd.sock"), "-n", "k8s.io"];
                const deadline = Date.now() + 120_000;
                while (Date.now() < deadline && run("ctr", [...ctrArgs, "tasks", "ls", "-q"]).trim()) await sleep(1000);
            } catch (e) {
                errors.push(`removing the pods: ${(e as Error).message}`);
            }
        }
        for (const n of ["kubelet", "kube-proxy", "kube-network-policies", "containerd"]) {
            const p = byName(n);
            if (p) await stopProcess(p);
        }
        // kube-proxy removes its own rules; what is left (kubelet's, the CNI plugins') goes with removeLeftovers.
        if (api) tryRun(tool("kube-proxy"), ["--cleanup"]);
        if (api) await api.stop();
        errors.push(...removeLeftovers(folders()));
        // Every containerd 1.6 shim puts its socket in /run/containerd/s, dockerd's too: only removed when empty.
        if (createdRunContainerd) for (const d of ["/run/containerd/s", "/run/containerd"]) tryRun("rmdir", [d]);
        if (!dockerdRuns()) {
            for (const [n, v] of sysctlsBefore)
                if (v === "0" && readSysctl(n) !== "0") fs.writeFileSync(`/proc/sys/${n}`, "0");
        }
        if (errors.length) throw new Error(`stopping the node:\n${errors.join("\n")}`);
    };

    try {
        if (readSysctl(SYSCTLS[0]) !== "1") fs.writeFileSync(`/proc/sys/${SYSCTLS[0]}`, "1");
        // The node's address and the Service range's route, both on a bridge with no ports.
        run("ip", ["link", "add", NODE_LINK, "type", "bridge"]);
        run("ip", ["addr", "add", `${NODE_ADDRESS}/32`, "dev", NODE_LINK]);
        run("ip", ["link", "set", NODE_LINK, "up"]);
        run("ip", ["route", "add", SERVICE_CIDR, "dev", NODE_LINK, "src", NODE_ADDRESS]);

        api = await startApiServer({
            advertiseAddress: NODE_ADDRESS,
            controllers: ["*"],
        });
        fs.writeFileSync(path.join(dir, "apiserver-dir"), api.dir);
        step("control plane (etcd, kube-apiserver, kube-controller-manager)");
        const a = api;
        const kubectl = (args: string[], input?: string) =>
            run(tool("kubectl"), ["--kubeconfig", a.kubeconfig, ...args], input);

        // containerd of its own
        fs.mkdirSync(path.join(dir, "containerd"), { recursive: true });
        fs.mkdirSync(path.join(dir, "cni", "net.d"), { recursive: true });
        fs.writeFileSync(path.join(dir, "containerd", "config.toml"), containerdConfig(dir));
        for (const registry of MIRRORED_REGISTRIES) {
            const hosts = path.join(dir, "containerd", "certs.d", registry);
            fs.mkdirSync(hosts, { recursive: true });
            fs.writeFileSync(path.join(hosts, "hosts.toml"), mirrorHostsToml(registry));
        }
        fs.writeFileSync(path.join(dir, "cni", "net.d", "10-fx-node.conflist"), cniConfig(dir));
        const sock = path.join(dir, "containerd", "containerd.sock");
        processes.push([
            "containerd",
            startProcess("containerd", ["--config", path.join(dir, "containerd", "config.toml")], logOf("containerd")),
            logOf("containerd"),
        ]);
        const ctr = (args: string[]) => run("ctr", ["--address", sock, ...args]);
        await waitFor("containerd", 60, async () => (fs.existsSync(sock) && ctr(["version"]) ? true : undefined), logs);
        step("containerd");
        importImages(dir, ctr);
        step("stand-in images built and imported");

        // kubelet
        const k = path.join(dir, "kubelet");
        fs.mkdirSync(k, { recursive: true });
        fs.copyFileSync(path.join(a.dir, "ca.crt"), path.join(k, "ca.crt"));
        issueCertificate(a.dir, "kubelet", `/CN=${NODE_NAME}`, [
            `subjectAltName=IP:${NODE_ADDRESS},DNS:${NODE_NAME}`,
            "extendedKeyUsage=serverAuth",
        ]);
        fs.renameSync(path.join(a.dir, "kubelet.crt"), path.join(k, "kubelet.crt"));
        fs.renameSync(path.join(a.dir, "kubelet.key"), path.join(k, "kubelet.key"));
        fs.writeFileSync(path.join(k, "config.yaml"), kubeletConfig(dir, await freePort(), await freePort()));
        const start = (name: string, args: string[]) => {
            processes.push([name, startProcess(tool(name), args, logOf(name)), logOf(name)]);
        };
        start("kubelet", [
            `--config=${path.join(k, "config.yaml")}`,
            `--kubeconfig=${a.kubeconfig}`,
            `--root-dir=${path.join(k, "root")}`,
            `--node-ip=${NODE_ADDRESS}`,
            `--hostname-override=${NODE_NAME}`,
            // A flag only: the config file's field does not stop the kubelet making the default folder.
            `--volume-plugin-dir=${path.join(k, "volume-plugins")}`,
            "--v=1",
        ]);
        start("kube-scheduler", [`--kubeconfig=${a.kubeconfig}`, "--leader-elect=false", "--secure-port=0", "--v=1"]);
        start("kube-proxy", [
            `--kubeconfig=${a.kubeconfig}`,
            `--hostname-override=${NODE_NAME}`,
            "--proxy-mode=iptables",
            `--cluster-cidr=${POD_CIDR}`,
            `--nodeport-addresses=${NODE_ADDRESS}/32`,
            `--metrics-bind-address=127.0.0.1:${await freePort()}`,
            `--healthz-bind-address=127.0.0.1:${await freePort()}`,
            // This machine's conntrack settings are left as they are.
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--v=1",
        ]);
        start("kube-network-policies", [
            `--kubeconfig=${a.kubeconfig}`,
            `--hostname-override=${NODE_NAME}`,
            `--nfqueue-id=${NETPOL_QUEUE}`,
            `--metrics-bind-address=127.0.0.1:${await freePort()}`,
            // Pod addresses from the API server: containerd 1.6 has no NRI socket.
            "--disable-nri",
            // This workaround queues DNS in PREROUTING for a conntrack race that kernels from 6.12 no longer have.
            `--netfilter-bug-1766-fix=${netfilterBug1766Fix()}`,
            // Each verdict and the policy behind it, for the node tier's failure messages.
            "--v=2",
        ]);

        const exited = () => {
            const gone = processes.find(([, p]) => p.exitCode !== null);
            if (gone) throw new Error(`${gone[0]} exited with code ${gone[1].exitCode}\n${logs()}`);
        };
        await waitFor(
            "node Ready",
            READY_TIMEOUT_SECONDS,
            async () => {
                const r = await a.request("GET", `/api/v1/nodes/${NODE_NAME}`);
                const ready = r.body?.status?.conditions?.find((c: { type: string }) => c.type === "Ready");
                return ready?.status === "True" ? true : undefined;
            },
            logs,
            exited,
        );
        step("node Ready (kubelet, kube-proxy, kube-scheduler started)");
        await waitFor(
            "the NetworkPolicy enforcer's nf_tables table and nfqueue",
            READY_TIMEOUT_SECONDS,
            async () => (netpolTables().length && boundNfqueue().length ? true : undefined),
            logs,
            exited,
        );
        step("NetworkPolicy enforcer reading its nfqueue");

        kubectl(["apply", "-f", "-"], coreDnsManifests());
        kubectl(["apply", "-f", "-"], storageManifests());
        const lpp = path.join(dir, "local-path-provisioner");
        fs.mkdirSync(path.join(lpp, "volumes"), { recursive: true });
        fs.writeFileSync(
            path.join(lpp, "config.json"),
            JSON.stringify({
                nodePathMap: [{ node: "DEFAULT_PATH_FOR_NON_LISTED_NODES", paths: [path.join(lpp, "volumes")] }],
                setupCommand: "/fx-volume-helper",
                teardownCommand: "/fx-volume-helper",
            }),
        );
        fs.writeFileSync(
            path.join(lpp, "helper-pod.yaml"),
            `apiVersion: v1
kind: Pod
metadata: {name: helper-pod}
spec:
  containers:
  - name: helper-pod
    image: ${VOLUME_HELPER_IMAGE}
    imagePullPolicy: Never
`,
        );
        start("local-path-provisioner", [
            "start",
            `--kubeconfig=${a.kubeconfig}`,
            `--config=${path.join(lpp, "config.json")}`,
            `--helper-pod-file=${path.join(lpp, "helper-pod.yaml")}`,
            `--namespace=${LPP_NAMESPACE}`,
            `--service-account-name=${LPP_SERVICE_ACCOUNT}`,
            `--helper-image=${VOLUME_HELPER_IMAGE}`,
            "--provisioner-name=rancher.io/local-path",
        ]);
        await waitFor(
            "CoreDNS available",
            READY_TIMEOUT_SECONDS,
            async () => {
                const r = await a.request("GET", "/apis/apps/v1/namespaces/kube-system/deployments/coredns");
                return (r.body?.status?.availableReplicas ?? 0) >= 1 ? true : undefined;
            },
            logs,
            exited,
        );
        step("CoreDNS available, storage provisioner started");
        timings["cluster start, total"] = (Date.now() - t0) / 1000;
        const ctrK8s = (args: string[]) => ctr(["-n", "k8s.io", ...args]);
        return { api: a, kubeconfig: a.kubeconfig, dir, createdHostPaths, timings, kubectl, ctr: ctrK8s, logs, stop };
    } catch (e) {
        try {
            await stop();
        } catch (s) {
            throw new Error(`${(e as Error).message}\n(and while stopping: ${(s as Error).message})`);
        }
        throw e;
    }
}

if (require.main === module && process.argv[2] === "--clean") {
    const folders = nodeFolders();
    const errors = removeLeftovers(folders);
    const left = leftovers(folders);
    console.log(left.length ? `still here:\n${left.join("\n")}` : "no node left");
    if (errors.length || left.length) process.exitCode = 1;
}
