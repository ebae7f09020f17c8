import { reveal, StackRun } from "../tools/harness";

/**
 * A small evaluator of Kubernetes NetworkPolicy ingress semantics over the policies a run declares, shared by the
 * data-layer and the application NetworkPolicy tests.
 */

/** A pod as NetworkPolicies see it: its namespace (with the namespace's labels) and its own labels. */
export interface Pod {
    namespace: string;
    labels: Record<string, string>;
}

type Selector = {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
};

/** A NetworkPolicy's manifest: `metadata.namespace` and `spec`. */
export type Policy = { metadata: { namespace: string }; spec: any };

export function matches(selector: Selector | undefined, labels: Record<string, string>): boolean {
    if (!selector) return true;
    const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    const byExpr = (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
        switch (operator) {
            case "In":
                return key in labels && values.includes(labels[key]);
            case "NotIn":
                return !(key in labels) || !values.includes(labels[key]);
            case "Exists":
                return key in labels;
            case "DoesNotExist":
                return !(key in labels);
            default:
                throw new Error(`unknown selector operator ${operator}`);
        }
    });
    return byLabel && byExpr;
}

/** The labels the API server puts on every namespace (Kubernetes >= 1.22). */
export const nsLabels = (ns: string) => ({ "kubernetes.io/metadata.name": ns });

/** The policy applies to the pod: same namespace, pod selector matches, and it governs ingress. */
export function selects(policy: Policy, pod: Pod): boolean {
    return (
        policy.metadata.namespace === pod.namespace &&
        (policy.spec.policyTypes ?? ["Ingress"]).includes("Ingress") &&
        matches(policy.spec.podSelector, pod.labels)
    );
}

/** One rule of the policy admits `client` on `port`/`protocol` (peers OR'ed, ports OR'ed, empty list = all). */
export function admits(policy: Policy, client: Pod, port: number, protocol: "TCP" | "UDP" = "TCP"): boolean {
    return ((policy.spec.ingress ?? []) as any[]).some((rule) => {
        const peers: any[] = rule.from ?? [];
        const peerOk =
            peers.length === 0 ||
            peers.some((peer) => {
                if (peer.ipBlock) return false; // no pod is modelled by address
                const nsOk = peer.namespaceSelector
                    ? matches(peer.namespaceSelector, nsLabels(client.namespace))
                    : client.namespace === policy.metadata.namespace;
                return nsOk && matches(peer.podSelector, client.labels);
            });
        const ports: any[] = rule.ports ?? [];
        const portOk = ports.length === 0 || ports.some((q) => (q.protocol ?? "TCP") === protocol && q.port === port);
        return peerOk && portOk;
    });
}

/** The run's NetworkPolicies, as manifests. */
export function networkPolicies(run: StackRun): Policy[] {
    return run.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy").map((r) => reveal(r.inputs));
}

/**
 * True when the declared NetworkPolicies let `from` open `port`/`protocol` on `to`: a pod no ingress policy selects
 * accepts everything; a selected pod accepts what at least one rule of a selecting policy admits.
 */
export function allowed(run: StackRun, from: Pod, to: Pod, port: number, protocol: "TCP" | "UDP" = "TCP"): boolean {
    const selecting = networkPolicies(run).filter((p) => selects(p, to));
    return selecting.length === 0 || selecting.some((p) => admits(p, from, port, protocol));
}
