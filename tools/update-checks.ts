/**
 * What the up tiers (test/tiers/images.test.ts) need beside the engine: the test-only setting that lets an up finish
 * against an API server with no kubelet (no readiness waits, webhooks ignored), and the create-order check read from
 * the engine's own events.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { urnName } from "./engine";
import { KubeObject } from "./kube-apply";
import { ROOT } from "./stacks";

/** The kube-controller-manager controllers that finish what a destroy starts; nothing else reconciles. */
export const CONTROLLERS = [
    "namespace-controller",
    "garbage-collector-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
];

/** How long the controllers get to finish deletions after `pulumi destroy` returns (generous: a busy 2-core machine). */
export const SETTLE_SECONDS = 180;

/**
 * A post-renderer (Helm's --post-renderer) that sets every admission webhook's failurePolicy to Ignore. Every other
 * document passes through byte for byte (re-serializing would change YAML 1.1 values such as `defaultMode: 0555`).
 */
export function writeWebhookPostRenderer(dir: string): string {
    const file = path.join(dir, "webhooks-ignore");
    const script = [
        "#!/usr/bin/env node",
        "// TEST ONLY (test/tiers/images.test.ts): no webhook server can run without a kubelet.",
        `const { parseDocument } = require(${JSON.stringify(path.join(ROOT, "node_modules", "yaml"))});`,
        'const chunks = require("fs").readFileSync(0, "utf8").split(/^---[^\\n]*\\n/m);',
        "const out = chunks.filter((c) => c.trim()).map((chunk) => {",
        '    const doc = parseDocument(chunk, { version: "1.1" });',
        '    if (!/^(Validating|Mutating)WebhookConfiguration$/.test(doc.get("kind"))) return chunk;',
        '    doc.get("webhooks")?.items.forEach((w) => w.set("failurePolicy", "Ignore"));',
        "    return doc.toString();",
        "});",
        'process.stdout.write(out.map((c) => "---\\n" + c).join(""));',
        "",
    ].join("\n");
    fs.writeFileSync(file, script, { mode: 0o755 });
    return file;
}

/** The test-only stack transform: see test/tiers/images.test.ts's doc comment. */
export function testOnlyNoWaits(postRenderer: string): pulumi.ResourceTransform {
    return (args) => {
        if (args.type === "kubernetes:helm.sh/v3:Release") {
            return {
                props: { ...args.props, skipAwait: true, disableWebhooks: true, postrender: postRenderer },
                opts: args.opts,
            };
        }
        if (args.custom && args.type.startsWith("kubernetes:") && args.type !== "kubernetes:core/v1:Namespace") {
            const metadata = pulumi.output(args.props.metadata ?? {}).apply((m: any) => ({
                ...m,
                annotations: { ...(m.annotations ?? {}), "pulumi.com/skipAwait": "true" },
            }));
            return { props: { ...args.props, metadata }, opts: args.opts };
        }
        return undefined;
    };
}

/** One resource's step in an update: the sequence numbers of its first event and of its outputs (done). */
export interface Step {
    urn: string;
    start: number;
    done?: number;
    outputs: Record<string, any>;
}

export function stepsOf(events: EngineEvent[]): Map<string, Step> {
    const steps = new Map<string, Step>();
    for (const e of events) {
        const pre = e.resourcePreEvent?.metadata;
        if (pre && !steps.has(pre.urn)) steps.set(pre.urn, { urn: pre.urn, start: e.sequence, outputs: {} });
        const out = e.resOutputsEvent?.metadata;
        if (out) {
            const step = steps.get(out.urn) ?? { urn: out.urn, start: e.sequence, outputs: {} };
            step.done = e.sequence;
            step.outputs = out.new?.outputs ?? {};
            steps.set(out.urn, step);
        }
    }
    return steps;
}

export function objectKey(o: {
    apiVersion: string;
    kind: string;
    metadata: { namespace?: string; name: string };
}): string {
    return `${o.apiVersion} ${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
}

function groupOf(apiVersion: string): string {
    return apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
}

/**
 * The step that created an object: a Helm release's (its meta.helm.sh annotations, or the owner/name labels of the
 * release's own Secret) or the Kubernetes resource whose outputs are that object.
 */
export function ownerStep(obj: KubeObject, steps: Map<string, Step>): Step | undefined {
    const a = (obj.metadata.annotations ?? {}) as Record<string, string>;
    const l = obj.metadata.labels ?? {};
    const release =
        a["meta.helm.sh/release-name"] !== undefined
            ? { name: a["meta.helm.sh/release-name"], namespace: a["meta.helm.sh/release-namespace"] }
            : l.owner === "helm" && obj.kind === "Secret"
              ? { name: l.name, namespace: obj.metadata.namespace }
              : undefined;
    for (const s of steps.values()) {
        const o = s.outputs;
        if (release) {
            if (o.name === release.name && o.namespace === release.namespace && s.urn.includes("helm.sh/v3:Release"))
                return s;
        } else if (
            o.kind === obj.kind &&
            o.apiVersion === obj.apiVersion &&
            o.metadata?.name === obj.metadata.name &&
            (o.metadata?.namespace ?? undefined) === (obj.metadata.namespace ?? undefined)
        ) {
            return s;
        }
    }
    return undefined;
}

/**
 * The object the API server itself made `obj` for, when it did: a Service's cluster IP (IPAddress, by its parentRef),
 * the local APIService it registers for a group its CRDs serve (labelled kube-aggregator.kubernetes.io/automanaged).
 */
export function madeByServerFor(obj: KubeObject, objects: KubeObject[]): KubeObject | undefined {
    if (obj.kind === "IPAddress" && obj.spec?.parentRef?.resource === "services") {
        const ref = obj.spec.parentRef;
        return objects.find(
            (o) => o.kind === "Service" && o.metadata.name === ref.name && o.metadata.namespace === ref.namespace,
        );
    }
    if (obj.kind === "APIService" && obj.metadata.labels?.["kube-aggregator.kubernetes.io/automanaged"]) {
        return objects.find((o) => o.kind === "CustomResourceDefinition" && o.spec?.group === obj.spec?.group);
    }
    return undefined;
}

/**
 * What breaks the create order among the objects an update created: an object no step accounts for, a custom
 * resource whose step began before the step that created its CRD had finished (or in that very step), a namespaced
 * object whose step began before its Namespace's step had finished.
 */
export function orderViolations(created: KubeObject[], steps: Map<string, Step>): string[] {
    const out: string[] = [];
    const crds = created.filter((o) => o.kind === "CustomResourceDefinition");
    const namespaces = new Map(created.filter((o) => o.kind === "Namespace").map((n) => [n.metadata.name, n]));
    const name = (s: Step) => urnName(s.urn);
    const before = (first: KubeObject, firstStep: Step | undefined, obj: KubeObject, step: Step, what: string) => {
        if (!firstStep) out.push(`${objectKey(first)}: no step of the update created it`);
        else if (firstStep === step)
            out.push(`${objectKey(obj)} was created in the same step (${name(step)}) as ${what}`);
        else if (firstStep.done === undefined || firstStep.done > step.start)
            out.push(
                `${objectKey(obj)} (step ${name(step)}, began at event #${step.start}) was created before ${what} ` +
                    `(step ${name(firstStep)}, done at event #${firstStep.done ?? "never"})`,
            );
    };
    for (const obj of created) {
        // Made by the server for another object of the update, it follows that object: the object is checked.
        if (madeByServerFor(obj, created)) continue;
        const step = ownerStep(obj, steps);
        if (!step) {
            out.push(`${objectKey(obj)}: no step of the update created it`);
            continue;
        }
        const crd = crds.find(
            (c) =>
                c.spec?.group === groupOf(obj.apiVersion) &&
                c.spec?.names?.kind === obj.kind &&
                groupOf(obj.apiVersion),
        );
        if (crd) before(crd, ownerStep(crd, steps), obj, step, `its CRD ${crd.metadata.name}`);
        const ns = obj.metadata.namespace ? namespaces.get(obj.metadata.namespace) : undefined;
        if (ns) before(ns, ownerStep(ns, steps), obj, step, `its Namespace ${ns.metadata.name}`);
    }
    return out;
}
