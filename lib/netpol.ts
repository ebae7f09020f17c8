import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { labels } from "./k8s";

/**
 * NetworkPolicy building blocks. A policy here only ever *allows* ingress to the pods it selects: once any policy
 * selects a pod, Kubernetes drops every connection no policy allows, so each `allowFrom` both opens the listed
 * paths and closes everything else to those pods. Policies are additive, so a default-deny policy and
 * application-level policies compose with these without ordering.
 *
 * Pod names (`app.kubernetes.io/name`) are APP of lib/contracts.ts.
 */

/** The namespace label every namespace carries (set by the API server since Kubernetes 1.22). */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

type LabelSelector = k8s.types.input.meta.v1.LabelSelector;
type Peer = k8s.types.input.networking.v1.NetworkPolicyPeer;

/** Selects pods whose `app.kubernetes.io/name` is one of `names`. */
export function podsNamed(...names: string[]): LabelSelector {
    if (names.length === 0) throw new Error("podsNamed needs at least one app.kubernetes.io/name");
    return { matchExpressions: [{ key: "app.kubernetes.io/name", operator: "In", values: [...names].sort() }] };
}

/** Selects pods by exact labels. */
export function podsLabelled(matchLabels: Record<string, pulumi.Input<string>>): LabelSelector {
    return { matchLabels };
}

/**
 * A peer: the pods matching `pods`, in `namespace` when given (by its name label), otherwise in the policy's own
 * namespace. Only `namespace` without `pods` admits every pod of that namespace.
 */
export function peer(opts: { pods?: LabelSelector; namespace?: pulumi.Input<string> }): Peer {
    if (!opts.pods && opts.namespace === undefined) {
        throw new Error("a NetworkPolicy peer needs pods, a namespace or both; an empty peer would admit everyone");
    }
    return {
        podSelector: opts.pods,
        namespaceSelector:
            opts.namespace === undefined ? undefined : { matchLabels: { [NAMESPACE_NAME_LABEL]: opts.namespace } },
    };
}

/** One ingress rule: these peers may reach these TCP ports (or named ports). */
export interface IngressRule {
    /** Why the path exists, kept as an annotation on the policy. */
    readonly why: string;
    readonly from: readonly Peer[];
    readonly ports: readonly (number | string)[];
    /** Default TCP. */
    readonly protocol?: "TCP" | "UDP" | "SCTP";
}

export interface AllowFromArgs {
    /** Namespace of the protected pods. */
    namespace: pulumi.Input<string>;
    /** The pods the policy protects. */
    podSelector: LabelSelector;
    /** Every path allowed into those pods. */
    rules: readonly IngressRule[];
    /** `app.kubernetes.io/name` of the policy's own labels (the workload it protects). */
    app: string;
    /** The NetworkPolicy's name in the cluster, where it differs from the resource name. */
    policyName?: string;
}

/**
 * An Ingress NetworkPolicy named `name` that admits exactly `rules` to the selected pods (and, by selecting them,
 * denies all other ingress). Egress is not restricted here.
 */
export function allowFrom(
    name: string,
    args: AllowFromArgs,
    opts?: pulumi.CustomResourceOptions,
): k8s.networking.v1.NetworkPolicy {
    if (args.rules.length === 0) throw new Error(`NetworkPolicy ${name}: no rules would deny all ingress; say so`);
    return new k8s.networking.v1.NetworkPolicy(
        name,
        {
            metadata: {
                name: args.policyName ?? name,
                namespace: args.namespace,
                labels: labels(args.app, "network-policy"),
                annotations: {
                    "fx-ml-pipeline/allows": args.rules.map((r) => `${r.why} (${r.ports.join(", ")})`).join("; "),
                },
            },
            spec: {
                podSelector: args.podSelector,
                policyTypes: ["Ingress"],
                ingress: args.rules.map((r) => ({
                    from: [...r.from],
                    ports: r.ports.map((port) => ({ protocol: r.protocol ?? "TCP", port })),
                })),
            },
        },
        opts,
    );
}
