import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { labels } from "./shared";

/** The namespaces the stack owns: one for the pipeline, one for monitoring. */
export interface NamespacesArgs {
    /** Pipeline namespace (Airflow, MLflow, FastAPI, FinGPT, Postgres, Redis). */
    app: string;
    /** Prometheus, Grafana and the StatsD exporter. */
    monitoring: string;
}

export class Namespaces extends pulumi.ComponentResource {
    public readonly app: pulumi.Output<string>;
    public readonly monitoring: pulumi.Output<string>;

    constructor(name: string, args: NamespacesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("fx:core:Namespaces", name, {}, opts);
        const make = (ns: string, component: string) =>
            new k8s.core.v1.Namespace(ns, { metadata: { name: ns, labels: labels(ns, component) } }, { parent: this });
        this.app = make(args.app, "pipeline").metadata.name;
        this.monitoring = make(args.monitoring, "monitoring").metadata.name;
        this.registerOutputs({ app: this.app, monitoring: this.monitoring });
    }
}
