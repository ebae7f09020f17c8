import { runStack, StackRun } from "../tools/harness";

const CLUSTER_ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer";
const CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate";
const INGRESS = "kubernetes:networking.k8s.io/v1:Ingress";
const CERT_MANAGER = "kubernetes-cert-manager:index:CertManager";
const NAMESPACE = "kubernetes:core/v1:Namespace";

/** host -> [namespace, service, port] each Ingress must route to (docs/contracts.md). */
const ROUTES: Record<string, [string, string, number]> = {
    airflow: ["fx-ml", "airflow-webserver", 8080],
    mlflow: ["fx-ml", "mlflow", 5000],
    grafana: ["fx-ml-monitoring", "grafana", 80],
    api: ["fx-ml", "fastapi", 8000],
};

describe("edge: cert-manager, ClusterIssuer, Ingresses", () => {
    let dev: StackRun;
    let gpu: StackRun;
    beforeAll(async () => {
        dev = await runStack("dev");
        gpu = await runStack("gpu");
    });

    test("cert-manager is installed from the pinned chart with CRDs through crds.enabled (installCRDs is deprecated)", () => {
        for (const run of [dev, gpu]) {
            const cm = run.one(CERT_MANAGER, "cert-manager");
            expect(cm.inputs.helmOptions).toMatchObject({
                namespace: "cert-manager",
                version: "v1.19.1",
                repositoryOpts: { repo: "https://charts.jetstack.io" },
                values: { crds: { enabled: true, keep: true } },
            });
            expect(cm.inputs.installCRDs).toBeUndefined();
            // Its namespace is ours, and labelled for the restricted Pod Security level.
            const ns = run.one(NAMESPACE, "fx-cert-manager");
            expect(ns.inputs.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
            expect(run.dependsOn(cm, ns)).toBe(true);
        }
    });

    test("dev: a selfSigned ClusterIssuer issues a CA certificate and a ca ClusterIssuer signs with it", () => {
        const bootstrap = dev.one(CLUSTER_ISSUER, "fx-selfsigned-issuer");
        const ca = dev.one(CERTIFICATE, "fx-ca-certificate");
        const issuer = dev.one(CLUSTER_ISSUER, "fx-ca-issuer");
        expect(bootstrap.inputs.spec).toEqual({ selfSigned: {} });
        expect(ca.inputs.metadata.namespace).toBe("cert-manager");
        expect(ca.inputs.spec).toMatchObject({
            isCA: true,
            secretName: "fx-ml-ca",
            issuerRef: { name: "fx-ml-selfsigned", kind: "ClusterIssuer", group: "cert-manager.io" },
        });
        expect(issuer.inputs.spec).toEqual({ ca: { secretName: ca.inputs.spec.secretName } });
        // Order: cert-manager (CRDs, webhook) -> bootstrap issuer -> CA certificate -> CA issuer.
        const cm = dev.one(CERT_MANAGER, "cert-manager");
        expect(dev.dependsOn(bootstrap, cm)).toBe(true);
        expect(dev.dependsOn(ca, bootstrap)).toBe(true);
        expect(dev.dependsOn(issuer, ca)).toBe(true);
        expect(dev.ofType(CLUSTER_ISSUER).map((r) => r.name)).not.toContain("fx-ml-acme");
    });

    test("gpu: an ACME ClusterIssuer with the configured e-mail and server and an HTTP-01 solver on the ingress class", () => {
        const issuer = gpu.one(CLUSTER_ISSUER, "fx-acme-issuer");
        expect(issuer.inputs.spec.acme).toEqual({
            email: "platform@example.com",
            server: "https://acme-v02.api.letsencrypt.org/directory",
            privateKeySecretRef: { name: "fx-ml-acme-account" },
            solvers: [{ http01: { ingress: { ingressClassName: "traefik" } } }],
        });
        expect(gpu.dependsOn(issuer, gpu.one(CERT_MANAGER, "cert-manager"))).toBe(true);
        expect(gpu.ofType(CLUSTER_ISSUER)).toHaveLength(1);
        expect(gpu.ofType(CERTIFICATE)).toHaveLength(0);
    });

    test.each([
        ["dev", "fx-ml.localhost", "fx-ml-ca"],
        ["gpu", "fx-ml.example.com", "fx-ml-acme"],
    ] as const)("%s: one TLS Ingress per UI and the API under %s, certificates from %s", (stack, domain, issuer) => {
        const run = stack === "dev" ? dev : gpu;
        expect(run.ofType(INGRESS)).toHaveLength(Object.keys(ROUTES).length);
        for (const [prefix, [namespace, service, port]] of Object.entries(ROUTES)) {
            const host = `${prefix}.${domain}`;
            const ing = run.one(INGRESS, `fx-${prefix}-ingress`);
            expect(ing.inputs.metadata.namespace).toBe(namespace);
            expect(ing.inputs.metadata.annotations).toEqual({
                "cert-manager.io/cluster-issuer": issuer,
                "pulumi.com/skipAwait": "true",
            });
            expect(ing.inputs.spec.ingressClassName).toBe("traefik");
            expect(ing.inputs.spec.tls).toEqual([{ hosts: [host], secretName: `${prefix}-tls` }]);
            expect(ing.inputs.spec.rules).toEqual([
                {
                    host,
                    http: {
                        paths: [
                            {
                                path: "/",
                                pathType: "Prefix",
                                backend: { service: { name: service, port: { number: port } } },
                            },
                        ],
                    },
                },
            ]);
            expect(run.dependsOn(ing, run.ofType(CLUSTER_ISSUER).find((r) => r.inputs.metadata.name === issuer)!)).toBe(
                true,
            );
            expect((run.outputs.urls.value as Record<string, string>)[prefix]).toBe(`https://${host}`);
        }
    });

    test("the ingress class and domain come from config", async () => {
        const run = await runStack("gpu", { config: { ingressClass: "haproxy", domain: "ml.corp.example" } });
        const api = run.one(INGRESS, "fx-api-ingress");
        expect(api.inputs.spec.ingressClassName).toBe("haproxy");
        expect(api.inputs.spec.rules[0].host).toBe("api.ml.corp.example");
        expect(
            run.one(CLUSTER_ISSUER, "fx-acme-issuer").inputs.spec.acme.solvers[0].http01.ingress.ingressClassName,
        ).toBe("haproxy");
    });

    test("installCertManager=false uses the cluster's cert-manager: no install, no namespace, issuers still declared", async () => {
        const run = await runStack("dev", { config: { installCertManager: false } });
        expect(run.ofType(CERT_MANAGER)).toHaveLength(0);
        expect(run.ofType(NAMESPACE).map((r) => r.inputs.metadata.name)).not.toContain("cert-manager");
        expect(run.one(CERTIFICATE, "fx-ca-certificate").inputs.metadata.namespace).toBe("cert-manager");
        expect(run.one(CLUSTER_ISSUER, "fx-ca-issuer").inputs.spec.ca.secretName).toBe("fx-ml-ca");
    });
});
