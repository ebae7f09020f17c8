/**
 * A real Kubernetes API server for the test tiers: etcd and kube-apiserver (built by scripts/tools.sh) on 127.0.0.1
 * with free ports, a throwaway CA and serving certificate, a service-account key pair, a static admin token and the
 * default admission plugins (Pod Security among them). No scheduler or kubelet runs: objects are stored and admitted,
 * never reconciled; only the kube-controller-manager controllers a caller names run (`controllers`), e.g. those that
 * finish deletions. `stop()` ends every process by PID; a process exit does too. A node (tools/cluster.ts) starts it
 * with `advertiseAddress`: it then listens on and advertises that address of this machine, which the certificate
 * names beside the `kubernetes` Service's IP, so pods reach it through `kubernetes.default`.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { TOOLS_BIN } from "./stacks";

/** What a request to the API server answered: HTTP status, parsed body, and the server's Warning headers. */
export interface ApiResponse {
    status: number;
    body: any;
    warnings: string[];
}

export interface ApiServer {
    /** https://127.0.0.1:<port>, or the advertised address (`advertiseAddress`) */
    url: string;
    /** A kubeconfig file for kubectl, helm and the Pulumi Kubernetes provider; its context is `context`. */
    kubeconfig: string;
    context: string;
    /** The folder holding certificates, data and the two processes' logs. */
    dir: string;
    request(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<ApiResponse>;
    /** The last lines of etcd's, kube-apiserver's (and kube-controller-manager's) own output, for failure messages. */
    logs(lines?: number): string;
    stop(): Promise<void>;
}

/** The Service range (kubeadm's default) and the `kubernetes` Service's address in it, which pods dial. */
export const SERVICE_CIDR = "10.96.0.0/12";
export const KUBERNETES_SERVICE_IP = "10.96.0.1";

/** Seconds to wait for /readyz: generous, for a busy 2-core machine. */
const READY_TIMEOUT_SECONDS = 180;

export interface StartOptions {
    /**
     * kube-controller-manager controllers to run once the server is ready (its `--controllers`, e.g.
     * `namespace-controller`); none by default, and then no controller manager starts.
     */
    controllers?: string[];
    /**
     * Reach admission webhooks (and aggregated APIs) through their Service's endpoints rather than its ClusterIP
     * (`--enable-aggregator-routing`): with no kubelet nothing serves a webhook, and a Service without endpoints fails
     * at once, never dialling a cluster address off this machine.
     */
    endpointRouting?: boolean;
    /**
     * A non-loopback address of this machine to listen on and advertise (the `kubernetes` Service's endpoint), for a
     * node whose pods call the server; also issues the client certificate the server presents to the kubelet
     * (`kubelet-client.crt`) and checks the kubelet's serving certificate against the CA. Default: 127.0.0.1 only.
     */
    advertiseAddress?: string;
}

export function tool(name: string): string {
    const p = path.join(TOOLS_BIN, name);
    if (!fs.existsSync(p)) throw new Error(`${name} not found in ${TOOLS_BIN}: run scripts/tools.sh first`);
    return p;
}

export async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => {
            const port = (s.address() as net.AddressInfo).port;
            s.close(() => resolve(port));
        });
    });
}

function openssl(cwd: string, ...args: string[]): void {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * `<name>.key` and `<name>.crt` in `dir`, signed by the CA there (`ca.crt`, `ca.key`), valid 2 days: `subject` as
 * openssl writes it (`/O=group/CN=user`), `extensions` the x509v3 lines (subjectAltName, extendedKeyUsage).
 */
export function issueCertificate(dir: string, name: string, subject: string, extensions: string[]): void {
    openssl(dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`);
    openssl(dir, "req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), extensions.join("\n") + "\n");
    openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`); // prettier-ignore
}

/**
 * CA, a serving certificate signed by it for loopback, `advertiseAddress` when given and the names and address of the
 * `kubernetes` Service, and the service-account signing key pair.
 */
function makeCertificates(dir: string, advertiseAddress?: string): void {
    openssl(dir, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key");
    openssl(
        dir,
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=fx-ml-test-ca",
        "-days",
        "2",
        "-out",
        "ca.crt",
    );
    const names = [
        "IP:127.0.0.1",
        ...(advertiseAddress ? [`IP:${advertiseAddress}`] : []),
        `IP:${KUBERNETES_SERVICE_IP}`,
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ];
    issueCertificate(dir, "server", "/CN=kube-apiserver", [
        `subjectAltName=${names.join(",")}`,
        "extendedKeyUsage=serverAuth",
    ]);
    if (advertiseAddress) {
        // What the server presents to the kubelet for logs and exec; the kubelet asks the server to authorize it.
        issueCertificate(dir, "kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", [
            "extendedKeyUsage=clientAuth",
        ]);
    }
    openssl(dir, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key");
    openssl(dir, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub");
}

export function tail(file: string, lines: number): string {
    if (!fs.existsSync(file)) return `(no ${path.basename(file)})`;
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/** A Warning header (`299 - "text"`, RFC 7234, the text Go-quoted) as the text kubectl prints. */
function warningText(header: string): string {
    const quoted = header.replace(/^\d{3} \S+ /, "");
    try {
        return JSON.parse(quoted);
    } catch {
        return quoted;
    }
}

const live = new Set<ChildProcess>();
// SIGTERM to a watchdog ends its process (after the process's grace) even once this process is gone; a SIGKILL would
// end the watchdog alone and leave the process running.
process.once("exit", () => {
    for (const p of live) p.kill("SIGTERM");
});
// A test run stopped from outside (a CI timeout, Ctrl-C) still ends the servers it started.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.once(signal, () => {
        for (const p of live) p.kill("SIGTERM");
        process.kill(process.pid, signal);
    });
}

/**
 * Starts a server under a small bash watchdog that ends it when this process is gone, however this process ended
 * (a SIGKILL from a CI timeout included); `stop` ends it through the watchdog, by PID. The data is throwaway, so the
 * server is killed outright: a graceful kube-apiserver shutdown can hang on an etcd that is already gone.
 */
const WATCHDOG = `"$@" & c=$!
end() { if [ "$FX_GRACE" -gt 0 ]; then kill -TERM $c 2>/dev/null
    for _ in $(seq "$FX_GRACE"); do kill -0 $c 2>/dev/null || break; sleep 1; done; fi
    kill -9 $c 2>/dev/null; wait $c; exit 0; }
trap end TERM INT
while kill -0 "$FX_PARENT_PID" 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 1; done
end`;

export interface ProcessOptions {
    /**
     * Seconds the process gets to stop on SIGTERM before it is killed (0, the default: killed outright). A daemon
     * that must tidy up after itself (dockerd stopping its containerd and containers) needs some.
     */
    graceSeconds?: number;
    /** Its environment; the caller's by default. */
    env?: NodeJS.ProcessEnv;
}

export function startProcess(bin: string, args: string[], logFile: string, opts: ProcessOptions = {}): ChildProcess {
    const out = fs.openSync(logFile, "a");
    const child = spawn("bash", ["-c", WATCHDOG, "watchdog", bin, ...args], {
        stdio: ["ignore", out, out],
        env: {
            ...(opts.env ?? process.env),
            FX_PARENT_PID: String(process.pid),
            FX_GRACE: String(opts.graceSeconds ?? 0),
        },
    });
    fs.closeSync(out);
    live.add(child);
    child.once("exit", () => live.delete(child));
    return child;
}

/** Stops a process started by startProcess through its watchdog (which kills it after its grace), and waits. */
export async function stopProcess(child: ChildProcess, graceSeconds = 0): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), (graceSeconds + 10) * 1000);
    await exited;
    clearTimeout(timer);
}

/** Starts etcd and kube-apiserver and waits until /readyz answers 200. */
export async function startApiServer(options: StartOptions = {}): Promise<ApiServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-apiserver-"));
    const address = options.advertiseAddress ?? "127.0.0.1";
    makeCertificates(dir, options.advertiseAddress);
    const token = crypto.randomBytes(24).toString("hex");
    fs.writeFileSync(path.join(dir, "tokens.csv"), `${token},fx-test-admin,fx-test-admin,"system:masters"\n`);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdLog = path.join(dir, "etcd.log");
    const apiLog = path.join(dir, "kube-apiserver.log");

    const etcd = startProcess(
        tool("etcd"),
        [
            "--name=fx-test",
            `--data-dir=${path.join(dir, "etcd")}`,
            `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
            `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
            `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
            `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
            `--initial-cluster=fx-test=http://127.0.0.1:${peerPort}`,
            "--unsafe-no-fsync", // throwaway data: no fsync keeps a busy machine's disk out of the way
            "--log-level=warn",
        ],
        etcdLog,
    );
    const apiserver = startProcess(
        tool("kube-apiserver"),
        [
            `--etcd-servers=http://127.0.0.1:${etcdPort}`,
            `--bind-address=${address}`,
            `--advertise-address=${address}`,
            `--secure-port=${apiPort}`,
            `--cert-dir=${dir}`,
            `--tls-cert-file=${path.join(dir, "server.crt")}`,
            `--tls-private-key-file=${path.join(dir, "server.key")}`,
            `--token-auth-file=${path.join(dir, "tokens.csv")}`,
            "--authorization-mode=RBAC",
            // As kubeadm, kind and the managed clusters run it: Pod Security, not this switch, judges privilege.
            "--allow-privileged=true",
            `--service-account-key-file=${path.join(dir, "sa.pub")}`,
            `--service-account-signing-key-file=${path.join(dir, "sa.key")}`,
            "--service-account-issuer=https://kubernetes.default.svc",
            `--service-cluster-ip-range=${SERVICE_CIDR}`,
            // The default plugin set (PodSecurity, NamespaceLifecycle, ServiceAccount, ... ) is left as shipped.
            "--v=0",
            ...(options.endpointRouting ? ["--enable-aggregator-routing=true"] : []),
            ...(options.advertiseAddress
                ? [
                      `--kubelet-client-certificate=${path.join(dir, "kubelet-client.crt")}`,
                      `--kubelet-client-key=${path.join(dir, "kubelet-client.key")}`,
                      `--kubelet-certificate-authority=${path.join(dir, "ca.crt")}`,
                      "--kubelet-preferred-address-types=InternalIP",
                  ]
                : []),
        ],
        apiLog,
    );

    const url = `https://${address}:${apiPort}`;
    const ca = fs.readFileSync(path.join(dir, "ca.crt"));
    const context = "fx-test";
    const kubeconfig = path.join(dir, "kubeconfig");
    fs.writeFileSync(
        kubeconfig,
        [
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            `- name: ${context}`,
            "  cluster:",
            `    server: ${url}`,
            `    certificate-authority: ${path.join(dir, "ca.crt")}`,
            "users:",
            `- name: ${context}`,
            "  user:",
            `    token: ${token}`,
            "contexts:",
            `- name: ${context}`,
            "  context:",
            `    cluster: ${context}`,
            `    user: ${context}`,
            `current-context: ${context}`,
            "",
        ].join("\n"),
        { mode: 0o600 },
    );

    const kcmLog = path.join(dir, "kube-controller-manager.log");
    let controllerManager: ChildProcess | undefined;
    const logs = (lines = 40) =>
        `--- etcd (${etcdLog}) ---\n${tail(etcdLog, lines)}\n--- kube-apiserver (${apiLog}) ---\n${tail(apiLog, lines)}` +
        (controllerManager ? `\n--- kube-controller-manager (${kcmLog}) ---\n${tail(kcmLog, lines)}` : "");

    const request = (method: string, urlPath: string, body?: unknown, contentType = "application/json") =>
        new Promise<ApiResponse>((resolve, reject) => {
            const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
            const req = https.request(
                `${url}${urlPath}`,
                {
                    method,
                    ca,
                    headers: {
                        Authorization: `Bearer ${token}`,
                        Accept: "application/json",
                        ...(payload === undefined ? {} : { "Content-Type": contentType }),
                    },
                    timeout: 60_000,
                },
                (res) => {
                    const chunks: Buffer[] = [];
                    res.on("data", (c) => chunks.push(c));
                    res.on("end", () => {
                        const text = Buffer.concat(chunks).toString("utf8");
                        let parsed: any = text;
                        try {
                            parsed = text ? JSON.parse(text) : undefined;
                        } catch {
                            // not JSON (e.g. /readyz): keep the text
                        }
                        const w = res.headers["warning"];
                        const warnings = (Array.isArray(w) ? w : w ? [w] : []).map(warningText);
                        resolve({ status: res.statusCode ?? 0, body: parsed, warnings });
                    });
                },
            );
            req.on("timeout", () => req.destroy(new Error(`${method} ${urlPath}: no answer in 60 s`)));
            req.on("error", reject);
            if (payload !== undefined) req.write(payload);
            req.end();
        });

    const server: ApiServer = {
        url,
        kubeconfig,
        context,
        dir,
        request,
        logs,
        stop: async () => {
            if (controllerManager) await stopProcess(controllerManager);
            await stopProcess(apiserver);
            await stopProcess(etcd);
        },
    };

    const deadline = Date.now() + READY_TIMEOUT_SECONDS * 1000;
    let last = "";
    for (;;) {
        for (const [name, p] of [
            ["etcd", etcd],
            ["kube-apiserver", apiserver],
        ] as const) {
            if (p.exitCode !== null) {
                await server.stop();
                throw new Error(`${name} exited with code ${p.exitCode} before the API server was ready\n${logs()}`);
            }
        }
        try {
            const r = await request("GET", "/readyz");
            if (r.status === 200) break;
            last = `/readyz ${r.status}: ${typeof r.body === "string" ? r.body : JSON.stringify(r.body)}`;
        } catch (e) {
            last = (e as Error).message;
        }
        if (Date.now() > deadline) {
            await server.stop();
            throw new Error(`API server not ready after ${READY_TIMEOUT_SECONDS} s (${last})\n${logs()}`);
        }
        await new Promise((r) => setTimeout(r, 500));
    }
    if (options.controllers?.length) {
        // The admin kubeconfig, no serving port, no leader election: one throwaway instance beside one server.
        controllerManager = startProcess(
            tool("kube-controller-manager"),
            [
                `--kubeconfig=${kubeconfig}`,
                `--controllers=${options.controllers.join(",")}`,
                "--leader-elect=false",
                "--secure-port=0",
                "--use-service-account-credentials=false",
                "--v=1",
                // For the controllers that need them (all default ones on a node): the CA pods trust
                // (kube-root-ca.crt), the key of legacy service-account tokens, the CSR signer.
                `--root-ca-file=${path.join(dir, "ca.crt")}`,
                `--service-account-private-key-file=${path.join(dir, "sa.key")}`,
                `--cluster-signing-cert-file=${path.join(dir, "ca.crt")}`,
                `--cluster-signing-key-file=${path.join(dir, "ca.key")}`,
            ],
            kcmLog,
        );
        // Its controllers start once it has reached the server; a flag it refuses ends it at once.
        await new Promise((r) => setTimeout(r, 2000));
        if (controllerManager.exitCode !== null) {
            const code = controllerManager.exitCode;
            await server.stop();
            throw new Error(`kube-controller-manager exited with code ${code}\n${logs()}`);
        }
    }
    return server;
}
