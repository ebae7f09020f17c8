import { runStack, StackName } from "../tools/harness";
import {
    AUTONAME_SUFFIX,
    K8sObject,
    REDACTED,
    REDACTED_B64,
    apiVersionKind,
    render,
    toObject,
} from "../tools/render-lib";
import * as fs from "fs";
import * as path from "path";
import { parseAllDocuments } from "yaml";
import { SHARED_DATA } from "../tools/stacks";
import { validateObjects } from "../tools/manifest-validation";

/** cert-manager's Certificate CRD at the version the stacks install (test data beside the project). */
const CERTIFICATE_CRD = path.join(SHARED_DATA.certManagerCrds, "cert-manager.io_certificates.yaml");

const STACKS: StackName[] = ["dev", "gpu"];

describe("rendered output", () => {
    test.each(STACKS)("%s stack: holds no secret value", async (stack) => {
        const run = await runStack(stack);
        const text = JSON.stringify(render(run));
        expect(run.sentinels.length).toBeGreaterThan(0);
        expect(run.sentinels.filter((s) => text.includes(s))).toEqual([]);
    });
});

describe("rendering maps Pulumi resources to manifests", () => {
    test.each([
        ["kubernetes:core/v1:Service", "v1", "Service"],
        ["kubernetes:apps/v1:Deployment", "apps/v1", "Deployment"],
        ["kubernetes:networking.k8s.io/v1:Ingress", "networking.k8s.io/v1", "Ingress"],
        ["kubernetes:cert-manager.io/v1:ClusterIssuer", "cert-manager.io/v1", "ClusterIssuer"],
    ])("%s -> %s %s", (type, apiVersion, kind) => {
        expect(apiVersionKind(type)).toEqual({ apiVersion, kind });
    });

    test("Helm releases and remote components are not objects", () => {
        expect(apiVersionKind("kubernetes:helm.sh/v3:Release")).toBeUndefined();
        expect(apiVersionKind("kubernetes:yaml/v2:ConfigGroup")).toBeUndefined();
    });

    test("an object without metadata.name gets Pulumi's auto-name: resource name plus a random suffix", () => {
        const { object } = toObject("kubernetes:core/v1:ConfigMap", "fx-settings", {
            metadata: { namespace: "fx-ml" },
        });
        expect(object.metadata.name).toBe(`fx-settings-${AUTONAME_SUFFIX}`);
        expect(validateObjects([object])).toEqual([]);
    });

    test("Secret payloads are redacted but keep their keys, wrapped or not", () => {
        const wrapped = {
            "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
            value: { password: "hunter2" },
        };
        const { object } = toObject("kubernetes:core/v1:Secret", "db", {
            metadata: { name: "db" },
            stringData: wrapped,
            data: { token: "aHVudGVyMg==" },
        });
        expect(object.stringData).toEqual({ password: REDACTED });
        expect(object.data).toEqual({ token: REDACTED_B64 });
        expect(validateObjects([object])).toEqual([]);
    });
});

/** A Deployment that passes every check; each broken variant below changes one thing. */
function deployment(): K8sObject {
    const labels = { "app.kubernetes.io/name": "fastapi", "app.kubernetes.io/instance": "fx-ml-pipeline" };
    return {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "fastapi", namespace: "fx-ml", labels },
        spec: {
            replicas: 2,
            selector: { matchLabels: labels },
            template: {
                metadata: { labels },
                spec: {
                    volumes: [{ name: "tmp", emptyDir: {} }],
                    containers: [
                        {
                            name: "fastapi",
                            image: "localhost:5001/fx-fastapi@sha256:" + "a".repeat(64),
                            ports: [{ name: "http", containerPort: 8000 }],
                            env: [{ name: "MODEL_NAME", value: "fx-usdsgd-predictor" }],
                            resources: {
                                requests: { cpu: "250m", memory: "512Mi" },
                                limits: { cpu: "1", memory: "512Mi" },
                            },
                            volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
                        },
                    ],
                },
            },
        },
    };
}

function broken(mutate: (d: any) => void): K8sObject {
    const d = deployment();
    mutate(d);
    return d;
}

const container = (d: any) => d.spec.template.spec.containers[0];

// Names, labels, ports, selectors and volumes are the API server's own rules: test/tiers/apiserver-negative.test.ts
// shows the real server refusing each.
describe("validation rejects what the API server would reject, and env names it would take", () => {
    test("the baseline Deployment passes", () => {
        expect(validateObjects([deployment()])).toEqual([]);
    });

    test.each<[string, (d: any) => void, string, RegExp]>([
        ["an unknown field", (d) => (d.spec.replica = 2), "unknown-field", /'"replica"' does not exist in type/],
        [
            "an unknown field deep in the pod",
            (d) => (container(d).livenessProbe = { httpGet: { path: "/health", port: "http" }, initialDelay: 5 }),
            "unknown-field",
            /'"initialDelay"' does not exist/,
        ],
        ["a wrong type", (d) => (d.spec.replicas = "two"), "schema", /\/spec\/replicas must be integer/],
        [
            "a malformed quantity",
            (d) => (container(d).resources.limits.memory = "512 MB"),
            "schema",
            /limits\/memory .*must match format "quantity"/,
        ],
        [
            "an env name with a dash",
            (d) => container(d).env.push({ name: "MODEL-ALIAS", value: "champion" }),
            "env-name",
            /'MODEL-ALIAS' must be a C identifier/,
        ],
    ])("%s", (_what, mutate, rule, message) => {
        const d = broken(mutate);
        expect(validateObjects([d])).toEqual([
            expect.objectContaining({
                object: `Deployment/fx-ml/${d.metadata.name}`,
                rule,
                message: expect.stringMatching(message),
            }),
        ]);
    });

    test("custom resources are validated against their CRD's schema (cert-manager's Certificate CRD, v1.19.1)", () => {
        const crds = parseAllDocuments(fs.readFileSync(CERTIFICATE_CRD, "utf8")).map((d) => d.toJS() as K8sObject);
        const cert = (spec: Record<string, unknown>): K8sObject => ({
            apiVersion: "cert-manager.io/v1",
            kind: "Certificate",
            metadata: { name: "api-tls", namespace: "fx-ml" },
            spec: {
                secretName: "api-tls",
                dnsNames: ["api.fx-ml.localhost"],
                issuerRef: { name: "fx-ml-ca", kind: "ClusterIssuer" },
                ...spec,
            },
        });
        expect(validateObjects([cert({})], crds)).toEqual([]);
        expect(validateObjects([cert({ dnsNames: "api.fx-ml.localhost" })], crds)).toEqual([
            expect.objectContaining({ rule: "schema", message: "/spec/dnsNames must be array" }),
        ]);
        expect(validateObjects([cert({ commonname: "api" })], crds)).toEqual([
            expect.objectContaining({
                rule: "unknown-field",
                message: '/spec: unknown field "commonname" (the CRD schema does not declare it)',
            }),
        ]);
        // Without the CRD, the kind has no schema at all: a problem, not a pass.
        expect(validateObjects([cert({})]).map((p) => p.message)).toEqual([
            expect.stringMatching(/^no schema for cert-manager\.io\/v1 Certificate/),
        ]);
    });

    test("a kind no installed package has a schema for is a problem, not a pass", () => {
        const cluster: K8sObject = {
            apiVersion: "postgresql.cnpg.io/v1",
            kind: "Cluster",
            metadata: { name: "fx-postgres" },
            spec: { instances: 1 },
        };
        expect(validateObjects([cluster])).toEqual([
            {
                object: "Cluster/fx-postgres",
                rule: "schema",
                message: expect.stringMatching(/no schema for postgresql\.cnpg\.io\/v1 Cluster/),
            },
        ]);
    });
});
