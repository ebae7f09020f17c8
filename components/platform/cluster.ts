import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import type { ClusterTarget } from "../../config/types";

/** Name of the one explicit Kubernetes provider; a test checks every Kubernetes resource uses it. */
export const CLUSTER_PROVIDER_NAME = "cluster";

/**
 * The one Kubernetes provider of a stack, bound to the context its config names. Every Kubernetes resource, chart and
 * remote component gets it through `clusterOptions(provider)`, so `pulumi up` never lands on whatever kubeconfig
 * context happens to be current (the default provider's behaviour); Pulumi.yaml also disables the default Kubernetes
 * provider, so a resource that misses it fails in the engine instead of silently using the current context.
 */
export function clusterProvider(target: ClusterTarget, opts?: pulumi.CustomResourceOptions): k8s.Provider {
    return new k8s.Provider(
        CLUSTER_PROVIDER_NAME,
        {
            context: target.context,
            // The provider takes a path or the file's contents here; a path keeps credentials out of the state.
            ...(target.kubeconfig ? { kubeconfig: target.kubeconfig } : {}),
        },
        opts,
    );
}

/**
 * Options that bind a component (and every child it parents) to the provider. `providers` is inherited by children of
 * a ComponentResource, and remote components (CertManager, helm.v4.Chart) receive it in their registration.
 */
export function clusterOptions(provider: k8s.Provider): pulumi.ComponentResourceOptions {
    return { providers: { kubernetes: provider } };
}
