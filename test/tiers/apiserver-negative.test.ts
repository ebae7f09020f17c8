/**
 * The API server tier's negative checks: objects a real kube-apiserver must refuse, each refused with its own message.
 * They prove the tier's checks can fail (strict field validation, Pod Security, CRD schemas, namespace lifecycle).
 */
import * as fs from "fs";
import * as path from "path";
import { SHARED_DATA } from "../../tools/stacks";
import { ApiServer, startApiServer } from "../../tools/apiserver";
import { admitPodTemplate, Discovery, parseObjects, serverSideApply, waitForCrds } from "../../tools/kube-apply";

const CERTIFICATE_CRD = path.join(SHARED_DATA.certManagerCrds, "cert-manager.io_certificates.yaml");
const apply = { dryRun: true, fieldManager: "fx-test-negative" };

let server: ApiServer;
let discovery: Discovery;

beforeAll(async () => {
    server = await startApiServer();
    discovery = new Discovery(server);
    await discovery.refresh();
    const [crd] = parseObjects(fs.readFileSync(CERTIFICATE_CRD, "utf8"));
    await serverSideApply(server, discovery, crd, { dryRun: false, fieldManager: "fx-test-crds" });
    await waitForCrds(server, discovery, [crd.metadata.name]);
    const ns = {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: "restricted-ns", labels: { "pod-security.kubernetes.io/enforce": "restricted" } },
    };
    await serverSideApply(server, discovery, ns, { dryRun: false, fieldManager: "fx-test" });
    const sa = { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "default", namespace: "restricted-ns" } };
    await serverSideApply(server, discovery, sa, { dryRun: false, fieldManager: "fx-test" });
}, 600_000);

afterAll(async () => {
    await server?.stop();
});

test("an object with an unknown field is refused by strict field validation", async () => {
    const cm = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "typo", namespace: "restricted-ns" },
        dataa: { key: "value" },
    };
    const o = await serverSideApply(server, discovery, cm, apply);
    // Server-side apply builds a typed patch first: an undeclared field fails there, whatever fieldValidation says.
    expect(o).toMatchObject({
        status: 500,
        message: expect.stringMatching(/ConfigMap\): \.dataa: field not declared in schema/),
    });
});

test("a pod that its namespace's Pod Security level (restricted) forbids is refused, naming the violations", async () => {
    const deployment = {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "rooty", namespace: "restricted-ns" },
        spec: {
            selector: { matchLabels: { app: "rooty" } },
            template: {
                metadata: { labels: { app: "rooty" } },
                spec: {
                    containers: [
                        { name: "main", image: "registry.example/app:1.0.0", securityContext: { privileged: true } },
                    ],
                },
            },
        },
    };
    // The workload itself is only warned about; its pod is refused.
    const workload = await serverSideApply(server, discovery, deployment, apply);
    expect(workload).toMatchObject({
        status: 201,
        message: undefined,
        warnings: [expect.stringMatching(/would violate PodSecurity "restricted:latest": privileged/)],
    });
    const pod = await admitPodTemplate(server, deployment);
    expect(pod).toMatchObject({
        status: 403,
        message: expect.stringMatching(/violates PodSecurity "restricted:latest": privileged/),
    });
});

test("a custom resource that breaks its CRD schema is refused with the field", async () => {
    const certificate = {
        apiVersion: "cert-manager.io/v1",
        kind: "Certificate",
        metadata: { name: "bad", namespace: "restricted-ns" },
        spec: { secretName: "bad-tls", issuerRef: { name: "ca" }, duration: "8760h", privateKey: { algorithm: "DSA" } },
    };
    const o = await serverSideApply(server, discovery, certificate, apply);
    expect(o).toMatchObject({
        status: 422,
        message: expect.stringMatching(
            /spec\.privateKey\.algorithm: Unsupported value: "DSA": supported values: "RSA", "ECDSA", "Ed25519"/,
        ),
    });
});

test("a namespaced object in a namespace that does not exist is refused", async () => {
    const secret = { apiVersion: "v1", kind: "Secret", metadata: { name: "orphan", namespace: "no-such-ns" } };
    const o = await serverSideApply(server, discovery, secret, { dryRun: false, fieldManager: "fx-test-negative" });
    expect(o).toMatchObject({ status: 404, message: expect.stringMatching(/namespaces "no-such-ns" not found/) });
});

/** A Deployment the server accepts (restricted pod shape), for the broken copies below. */
function deployment(): any {
    return {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "fastapi", namespace: "restricted-ns", labels: { app: "fastapi" } },
        spec: {
            selector: { matchLabels: { app: "fastapi" } },
            template: {
                metadata: { labels: { app: "fastapi" } },
                spec: {
                    securityContext: {
                        runAsNonRoot: true,
                        runAsUser: 1000,
                        seccompProfile: { type: "RuntimeDefault" },
                    },
                    containers: [
                        {
                            name: "fastapi",
                            image: "registry.example/fx-fastapi:1.0.0",
                            ports: [{ name: "http", containerPort: 8000 }],
                            volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
                            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
                        },
                    ],
                    volumes: [{ name: "tmp", emptyDir: {} }],
                },
            },
        },
    };
}
const main = (d: any) => d.spec.template.spec.containers[0];

// The rules tools/manifest-validation.ts left to the server (names, labels, ports, selectors, volumes): each refused.
test("the baseline Deployment of the refusals below is accepted", async () => {
    expect(await serverSideApply(server, discovery, deployment(), apply)).toMatchObject({ status: 201 });
});

test.each<[string, (d: any) => void, RegExp]>([
    ["a label value with a space", (d) => (d.metadata.labels.version = "2.9 beta"), /metadata\.labels: Invalid value/],
    ["a label value over 63 characters", (d) => (d.metadata.labels.team = "x".repeat(64)), /must be no more than 63/],
    [
        "a 16-character port name",
        (d) => (main(d).ports[0].name = "http-metrics-api"),
        /ports\[0\]\.name: Invalid value/,
    ],
    ["an upper-case port name", (d) => (main(d).ports[0].name = "HTTP"), /ports\[0\]\.name: Invalid value/],
    [
        "two ports with one name",
        (d) => main(d).ports.push({ name: "http", containerPort: 9000 }),
        /ports\[1\]\.name: Duplicate value/,
    ],
    [
        "a mount of an undeclared volume",
        (d) => main(d).volumeMounts.push({ name: "cache", mountPath: "/cache" }),
        /volumeMounts\[1\]\.name: Not found: "cache"/,
    ],
    [
        "a selector the pods do not match",
        (d) => (d.spec.selector.matchLabels = { app: "api" }),
        /selector` does not match template `labels`/,
    ],
    ["an upper-case name", (d) => (d.metadata.name = "FastAPI"), /metadata\.name: Invalid value: "FastAPI"/],
])("%s is refused", async (_what, mutate, message) => {
    const d = deployment();
    mutate(d);
    const o = await serverSideApply(server, discovery, d, apply);
    expect(o).toMatchObject({ status: 422, message: expect.stringMatching(message) });
});

test("a Service name must start with a letter (DNS-1035), and several ports need names", async () => {
    const svc = {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "5000-mlflow", namespace: "restricted-ns" },
        spec: { ports: [{ port: 5000, targetPort: "http" }, { port: 9090 }] },
    };
    const o = await serverSideApply(server, discovery, svc, apply);
    expect(o).toMatchObject({
        status: 422,
        message: expect.stringMatching(/metadata\.name: Invalid value: "5000-mlflow"/),
    });
    expect(o.message).toMatch(/spec\.ports\[0\]\.name: Required value/);
});

test("two containers with one name are refused (server-side apply keys containers by name)", async () => {
    const d = deployment();
    d.spec.template.spec.containers.push({ ...main(d), ports: [] });
    const o = await serverSideApply(server, discovery, d, apply);
    expect(o.status).toBeGreaterThanOrEqual(400);
    expect(o.message).toMatch(/duplicate entries for key \[name="fastapi"\]|Duplicate value: "fastapi"/);
});
