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
