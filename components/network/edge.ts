import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { CertManager } from "@pulumi/kubernetes-cert-manager";
import { StackConfig } from "../../config/types";
import { labels } from "../../lib/k8s";
import { chartSource, HelmCharts } from "../../lib/chart-values";
import { RELEASES } from "../../lib/contracts";

/** A Service an Ingress routes to: its namespace, name and port (the Service port, not the pod's). */
export interface Backend {
    namespace: pulumi.Input<string>;
    service: pulumi.Input<string>;
    port: number;
}

/** The exposed UIs and the API; each gets `https://<key-host>.<domain>`. */
export type Exposed = "airflow" | "mlflow" | "grafana" | "api";

/** Host prefix of each exposed backend under the stack's domain. */
export const HOSTS: Readonly<Record<Exposed, string>> = {
    airflow: "airflow",
    mlflow: "mlflow",
    grafana: "grafana",
    api: "api",
};

export interface EdgeArgs {
    /** The stack's edge settings: domain, ingress class, issuer kind, ACME account, whether to install cert-manager. */
    edge: StackConfig["edge"];
    /**
     * Namespace cert-manager runs in (its "cluster resource namespace", where a `ca` ClusterIssuer reads its CA
     * Secret). Created by the Namespaces component when the stack installs cert-manager.
     */
    certManagerNamespace: pulumi.Input<string>;
    /** The cert-manager install (installCertManager), when the stack installs it. */
    certManager?: CertManager;
    /** The Services the Ingresses route to. */
    backends: Readonly<Record<Exposed, Backend>>;
}

/**
 * TLS at the edge: cert-manager (optional), one ClusterIssuer, and an Ingress with a cert-manager certificate for
 * each UI and the inference API.
 *
 * Issuers: `selfsigned` builds a private CA the proper way (a selfSigned ClusterIssuer issues a CA Certificate, a
 * `ca` ClusterIssuer signs every host with it, so clients trust one CA rather than each leaf); `acme` is an ACME
 * ClusterIssuer with an HTTP-01 solver on the stack's ingress class.
 */
export class Edge extends pulumi.ComponentResource {
    /** Name of the ClusterIssuer every Ingress uses. */
    public readonly issuerName: pulumi.Output<string>;
    /** `https://<host>` of each exposed backend. */
    public readonly urls: pulumi.Output<Record<Exposed, string>>;
    /** The cert-manager install, when the stack installs it (dependents wait for its CRDs and webhook). */
    public readonly certManager?: CertManager;

    constructor(name: string, args: EdgeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:network:Edge", name, {}, { ...opts, aliases: [{ type: "fx:edge:Edge" }, ...(opts?.aliases ?? [])] });
        const { edge } = args;

        this.certManager = args.certManager;
        const after = this.certManager ? { dependsOn: [this.certManager] } : {};

        const clusterIssuer = (
            role: string,
            issuerName: string,
            spec: Record<string, unknown>,
            extra?: pulumi.CustomResourceOptions,
        ) =>
            new k8s.apiextensions.CustomResource(
                `${name}-${role}`,
                {
                    apiVersion: "cert-manager.io/v1",
                    kind: "ClusterIssuer",
                    metadata: { name: issuerName, labels: labels(issuerName, "tls") },
                    spec,
                },
                { parent: this, ...after, aliases: [{ name: issuerName }], ...extra },
            );

        let issuer: k8s.apiextensions.CustomResource;
        if (edge.tlsIssuer === "acme") {
            // Validated in config: acmeEmail is set whenever tlsIssuer is acme.
            issuer = clusterIssuer("acme-issuer", "fx-ml-acme", {
                acme: {
                    email: edge.acmeEmail,
                    server: edge.acmeServer,
                    privateKeySecretRef: { name: "fx-ml-acme-account" },
                    solvers: [{ http01: { ingress: { ingressClassName: edge.ingressClass } } }],
                },
            });
        } else {
            const bootstrap = clusterIssuer("selfsigned-issuer", "fx-ml-selfsigned", { selfSigned: {} });
            const caSecret = "fx-ml-ca";
            const ca = new k8s.apiextensions.CustomResource(
                `${name}-ca-certificate`,
                {
                    apiVersion: "cert-manager.io/v1",
                    kind: "Certificate",
                    // A `ca` ClusterIssuer reads its Secret from cert-manager's cluster resource namespace.
                    metadata: {
                        name: "fx-ml-ca",
                        namespace: args.certManagerNamespace,
                        labels: labels("fx-ml-ca", "tls"),
                    },
                    spec: {
                        isCA: true,
                        commonName: `fx-ml-pipeline CA (${edge.domain})`,
                        secretName: caSecret,
                        duration: "8760h",
                        renewBefore: "720h",
                        privateKey: { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" },
                        issuerRef: { name: bootstrap.metadata.name, kind: "ClusterIssuer", group: "cert-manager.io" },
                    },
                },
                {
                    parent: this,
                    aliases: [{ name: "fx-ml-ca" }],
                    dependsOn: [bootstrap, ...(this.certManager ? [this.certManager] : [])],
                },
            );
            issuer = clusterIssuer("ca-issuer", "fx-ml-ca", { ca: { secretName: caSecret } }, { dependsOn: [ca] });
        }
        this.issuerName = issuer.metadata.name;

        const urls = {} as Record<Exposed, pulumi.Output<string>>;
        for (const key of Object.keys(HOSTS) as Exposed[]) {
            const host = `${HOSTS[key]}.${edge.domain}`;
            const backend = args.backends[key];
            const ingress = new k8s.networking.v1.Ingress(
                `${name}-${HOSTS[key]}-ingress`,
                {
                    metadata: {
                        name: HOSTS[key],
                        namespace: backend.namespace,
                        labels: labels(HOSTS[key], "edge"),
                        annotations: {
                            "cert-manager.io/cluster-issuer": this.issuerName,
                            // The provider would wait for .status.loadBalancer, which only a controller that publishes
                            // an address fills: Traefik behind a NodePort Service (scripts/kind-up.sh) never does, and
                            // the up failed after 10 minutes. The backends' own readiness is awaited on their
                            // Deployments (docs/decisions.md, "Ingresses are not awaited").
                            "pulumi.com/skipAwait": "true",
                        },
                    },
                    spec: {
                        ingressClassName: edge.ingressClass,
                        tls: [{ hosts: [host], secretName: `${HOSTS[key]}-tls` }],
                        rules: [
                            {
                                host,
                                http: {
                                    paths: [
                                        {
                                            path: "/",
                                            pathType: "Prefix",
                                            backend: {
                                                service: { name: backend.service, port: { number: backend.port } },
                                            },
                                        },
                                    ],
                                },
                            },
                        ],
                    },
                },
                // The issuer first: cert-manager's ingress-shim requests the certificate as soon as the Ingress exists.
                { parent: this, dependsOn: [issuer], aliases: [{ name: `${HOSTS[key]}-ingress` }] },
            );
            urls[key] = pulumi.interpolate`https://${ingress.spec.rules[0].host}`;
        }
        this.urls = pulumi.all(urls) as pulumi.Output<Record<Exposed, string>>;
        this.registerOutputs({ issuerName: this.issuerName, urls: this.urls });
    }
}

/**
 * cert-manager's release (remote component), installed before everything that needs its CRDs: the Barman Cloud plugin
 * of the Postgres backups, then Edge's issuers and certificates. `opts` must carry the cluster provider itself (a
 * remote component does not inherit its parent's).
 */
export function installCertManager(
    edgeName: string,
    charts: HelmCharts,
    namespace: pulumi.Input<string>,
    opts: pulumi.ComponentResourceOptions,
): CertManager {
    return new CertManager(
        "cert-manager",
        {
            // installCRDs is deprecated since cert-manager 1.15 and the component has no `crds` field
            // (pulumi-kubernetes-cert-manager#419); helmOptions.values is the base of the release's values,
            // so the chart's own crds.enabled/keep pass through. keep: CRDs (and so every Certificate)
            // survive an uninstall of the release.
            helmOptions: {
                name: RELEASES.certManager,
                namespace,
                ...certManagerChart(charts),
                values: { crds: { enabled: true, keep: true } },
            },
            // The chart's pods already meet `restricted` (non-root, RuntimeDefault seccomp, drop ALL, no
            // escalation); requests/limits are ours, the chart sets none.
            resources: {
                requests: { cpu: "10m", memory: "64Mi" },
                limits: { cpu: "200m", memory: "128Mi" },
            },
            webhook: {
                resources: {
                    requests: { cpu: "10m", memory: "32Mi" },
                    limits: { cpu: "100m", memory: "64Mi" },
                },
            },
            cainjector: {
                resources: {
                    requests: { cpu: "10m", memory: "64Mi" },
                    limits: { cpu: "100m", memory: "256Mi" },
                },
            },
            prometheus: { enabled: true },
        },
        {
            ...opts,
            // It was Edge's child until the Postgres backups needed it first: the alias keeps the installed release.
            aliases: [{ parent: pulumi.createUrn(edgeName, "fx:edge:Edge") }],
        },
    );
}

/**
 * cert-manager's chart for the CertManager component. The component fills in https://charts.jetstack.io whenever
 * `repositoryOpts.repo` is unset (pulumi-go-helmbase InitDefaults), and the provider then looks the chart up there even
 * when `chart` is a local archive or an OCI reference; an explicit empty repository keeps the chart where it is.
 */
export function certManagerChart(charts: HelmCharts): ReturnType<typeof chartSource> {
    const source = charts.source("certManager");
    return { ...source, repositoryOpts: source.repositoryOpts ?? { repo: "" } };
}
