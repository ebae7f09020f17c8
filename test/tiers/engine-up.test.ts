/**
 * The engine tier's `up` and `destroy` (`npm run test:engine`): the real Pulumi CLI and the real Kubernetes provider
 * plugin run `pulumi up` of the dev stack against a real kube-apiserver (tools/apiserver.ts), prepared as the preview
 * tier prepares it (tools/engine.ts prepareStack: a fresh stack, the stack file's config plus the cluster target and
 * `chartRepository` = ../shared/charts, an inline program, a throwaway file backend, no network), then
 * `pulumi destroy`. It asserts against the API server itself: what the up created, that custom resources were created
 * after their CRDs and namespaced objects after their Namespace (the engine's own event order), and that the destroy
 * leaves nothing behind.
 *
 * Plugins: kubernetes is the real provider; random, docker and kubernetes-cert-manager are STAND-INS
 * (tools/standins/provider.ts; no registry here serves them). The docker stand-in builds and pushes nothing: every
 * image's digest stays unknown and no image exists anywhere, so the Deployments name images nobody built (nothing
 * pulls them either: there is no kubelet).
 *
 * TEST-ONLY SETTING (nothing in the stack's config: config is strict, and a knob there would be a footgun). With no
 * kubelet nothing ever becomes ready, so the inline program wrapper registers a stack transform (`testOnlyNoWaits`)
 * before it loads index.ts:
 * - every Kubernetes object but a Namespace gets the `pulumi.com/skipAwait: "true"` annotation (the provider's own
 *   switch for its readiness waits); Namespaces keep theirs, so the destroy really waits for each to be gone;
 * - every Helm Release gets `skipAwait: true`, `disableWebhooks: true` (the provider's name for Helm's
 *   --no-hooks) and a post-renderer that sets `failurePolicy: Ignore` on the charts' admission webhooks, whose
 *   servers (cert-manager's, CloudNativePG's) cannot run here; the API server reaches webhooks through endpoints
 *   (startApiServer `endpointRouting`), so each call fails at once and is ignored instead of timing out.
 * kube-controller-manager runs only the controllers that finish deletions (namespace, garbage collector, PVC/PV
 * protection): a Namespace stays Terminating and a PVC keeps its pvc-protection finalizer without them.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { DestroyResult, EngineEvent, Stack, UpResult } from "@pulumi/pulumi/automation";
import { ApiServer, startApiServer } from "../../tools/apiserver";
import { destroy, offlineEngineEnv, prepareStack, projectCopy, up, UpdateRun, urnName } from "../../tools/engine";
import { KubeObject, listAll } from "../../tools/kube-apply";
import { installPlugins, InstalledPlugin } from "../../tools/plugins";
import { ROOT, runStack } from "../../tools/harness";
import { SHARED_DATA } from "../../tools/stacks";

const RESULTS = path.join(ROOT, "out", "engine");

/** The kube-controller-manager controllers that finish what a destroy starts; nothing else reconciles. */
const CONTROLLERS = [
    "namespace-controller",
    "garbage-collector-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
];

/** How long the controllers get to finish deletions after `pulumi destroy` returns (generous: a busy 2-core machine). */
const SETTLE_SECONDS = 180;

/**
 * A post-renderer (Helm's --post-renderer) that sets every admission webhook's failurePolicy to Ignore. Every other
 * document passes through byte for byte (re-serializing would change YAML 1.1 values such as `defaultMode: 0555`).
 */
function writeWebhookPostRenderer(dir: string): string {
    const file = path.join(dir, "webhooks-ignore");
    const script = [
        "#!/usr/bin/env node",
        "// TEST ONLY (test/tiers/engine-up.test.ts): no webhook server can run without a kubelet.",
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

/** The test-only stack transform (see the file's doc comment). */
function testOnlyNoWaits(postRenderer: string): pulumi.ResourceTransform {
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
interface Step {
    urn: string;
    start: number;
    done?: number;
    outputs: Record<string, any>;
}

function stepsOf(events: EngineEvent[]): Map<string, Step> {
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

function key(o: { apiVersion: string; kind: string; metadata: { namespace?: string; name: string } }): string {
    return `${o.apiVersion} ${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
}

function groupOf(apiVersion: string): string {
    return apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
}

/**
 * The step that created an object: a Helm release's (its meta.helm.sh annotations, or the owner/name labels of the
 * release's own Secret) or the Kubernetes resource whose outputs are that object.
 */
function ownerStep(obj: KubeObject, steps: Map<string, Step>): Step | undefined {
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
function madeByServerFor(obj: KubeObject, objects: KubeObject[]): KubeObject | undefined {
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
function orderViolations(created: KubeObject[], steps: Map<string, Step>): string[] {
    const out: string[] = [];
    const crds = created.filter((o) => o.kind === "CustomResourceDefinition");
    const namespaces = new Map(created.filter((o) => o.kind === "Namespace").map((n) => [n.metadata.name, n]));
    const name = (s: Step) => urnName(s.urn);
    const before = (first: KubeObject, firstStep: Step | undefined, obj: KubeObject, step: Step, what: string) => {
        if (!firstStep) out.push(`${key(first)}: no step of the update created it`);
        else if (firstStep === step) out.push(`${key(obj)} was created in the same step (${name(step)}) as ${what}`);
        else if (firstStep.done === undefined || firstStep.done > step.start)
            out.push(
                `${key(obj)} (step ${name(step)}, began at event #${step.start}) was created before ${what} ` +
                    `(step ${name(firstStep)}, done at event #${firstStep.done ?? "never"})`,
            );
    };
    for (const obj of created) {
        // Made by the server for another object of the update, it follows that object: the object is checked.
        if (madeByServerFor(obj, created)) continue;
        const step = ownerStep(obj, steps);
        if (!step) {
            out.push(`${key(obj)}: no step of the update created it`);
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

let server: ApiServer;
let home: string;
let plugins: InstalledPlugin[];
let stack: Stack;
let upRun: UpdateRun<UpResult>;
let destroyRun: UpdateRun<DestroyResult>;
let baseline: Set<string>;
let created: KubeObject[];
let left: KubeObject[];
let stackResourcesAfterDestroy: number;
const output: string[] = [];
const timings: Record<string, number> = {};

/** The engine's output and the servers' own, for a failure message. */
function diagnostics(): string {
    return `--- engine output (last 200 lines) ---\n${output.join("").split("\n").slice(-200).join("\n")}\n${server?.logs(60)}`;
}

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
        return await f();
    } finally {
        timings[label] = Math.round((Date.now() - t0) / 100) / 10;
        process.stdout.write(`[engine up] ${label}: ${timings[label]} s\n`);
    }
}

/**
 * Objects the stack put in the server: all it stores less what it stored before the up (by uid), and less Events
 * (`v1` and `events.k8s.io/v1`): records the API server and the controllers write about objects, which no program
 * creates and which expire on their own (one about the fastapi objects appeared in some runs only).
 */
async function stackObjects(): Promise<KubeObject[]> {
    return (await listAll(server)).filter((o) => !baseline.has(o.metadata.uid as string) && o.kind !== "Event");
}

describe("up and destroy of dev against a real API server", () => {
    beforeAll(async () => {
        const t0 = Date.now();
        home = fs.mkdtempSync(path.join(os.tmpdir(), "fx-engine-up-"));
        server = await timed("API server start", () =>
            startApiServer({ controllers: CONTROLLERS, endpointRouting: true }),
        );
        try {
            const pulumiHome = path.join(home, "pulumi-home");
            plugins = installPlugins(pulumiHome, path.join(home, "plugins"));
            const env = {
                ...offlineEngineEnv(pulumiHome, "engine-up"),
                PULUMI_BACKEND_URL: `file://${fs.mkdtempSync(path.join(home, "state-"))}`,
            };
            const postRenderer = writeWebhookPostRenderer(home);
            stack = await prepareStack({
                stack: "dev",
                workDir: projectCopy(home),
                program: async () => {
                    pulumi.runtime.registerResourceTransform(testOnlyNoWaits(postRenderer));
                    return { ...(await import(path.join(ROOT, "index.ts"))) };
                },
                config: {
                    kubeconfig: server.kubeconfig,
                    kubeContext: server.context,
                    chartRepository: SHARED_DATA.charts,
                },
                envVars: env,
            });
            baseline = new Set((await listAll(server)).map((o) => o.metadata.uid as string));
            const onOutput = (s: string) => output.push(s);
            upRun = await timed("pulumi up", () => up(stack, { onOutput }));
            created = await stackObjects();
            destroyRun = await timed("pulumi destroy", () => destroy(stack, { onOutput }));
            // The controllers finish what the destroy started (a Namespace's content, finalizers), as on any cluster.
            left = await timed("controllers settle", async () => {
                const deadline = Date.now() + SETTLE_SECONDS * 1000;
                for (;;) {
                    const now = await stackObjects();
                    if (now.every((o) => keptOnPurpose(o, now)) || Date.now() > deadline) return now;
                    await new Promise((r) => setTimeout(r, 2000));
                }
            });
            const state = await stack.exportStack();
            stackResourcesAfterDestroy = state.deployment?.resources?.length ?? 0;
        } catch (e) {
            throw new Error(`${(e as Error).message}\n${diagnostics()}`);
        }
        timings["whole setup"] = Math.round((Date.now() - t0) / 100) / 10;
        const kinds: Record<string, number> = {};
        for (const o of created) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
        const record = {
            stack: "dev",
            plugins,
            controllers: CONTROLLERS,
            timingsSeconds: timings,
            up: upRun.result.summary.resourceChanges,
            destroy: destroyRun.result.summary.resourceChanges,
            objectsCreated: created.length,
            objectsByKind: kinds,
            objectsLeft: left.map(key),
        };
        fs.mkdirSync(RESULTS, { recursive: true });
        fs.writeFileSync(path.join(RESULTS, "dev-up.json"), JSON.stringify(record, null, 2) + "\n");
        fs.writeFileSync(path.join(RESULTS, "dev-up.log"), output.join(""));
        process.stdout.write(
            `[engine up] ${JSON.stringify(record.up)} -> ${created.length} objects ${JSON.stringify(kinds)}\n`,
        );
    }, 900_000);

    afterAll(async () => {
        await server?.stop();
    });

    /**
     * CRDs a chart keeps on uninstall on purpose (`helm.sh/resource-policy: keep`: docs/decisions.md), and the
     * APIService the API server registers for their group while they stay; `left` is everything left.
     */
    function keptOnPurpose(o: KubeObject, left: KubeObject[]): boolean {
        if (o.kind === "CustomResourceDefinition")
            return (
                (o.metadata.annotations as Record<string, string> | undefined)?.["helm.sh/resource-policy"] === "keep"
            );
        const crd = madeByServerFor(o, left);
        return o.kind === "APIService" && crd !== undefined && keptOnPurpose(crd, left);
    }

    function find(kind: string, name: string, namespace?: string): KubeObject {
        const o = created.find(
            (c) => c.kind === kind && c.metadata.name === name && c.metadata.namespace === namespace,
        );
        if (!o) throw new Error(`${kind} ${namespace ? `${namespace}/` : ""}${name} is not in the API server`);
        return o;
    }

    describe("pulumi up", () => {
        test("creates every resource without error, and the API server holds each Kubernetes object the program declares", async () => {
            expect(upRun.result.summary.result).toBe("succeeded");
            const changes = upRun.result.summary.resourceChanges ?? {};
            expect(Object.keys(changes)).toEqual(["create"]);
            const mock = await runStack("dev");
            const declared = mock.resources.filter(
                (r) => r.custom && r.type.startsWith("kubernetes:") && r.type !== "kubernetes:helm.sh/v3:Release",
            );
            const stored = new Set(created.map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`));
            const missing = declared
                .map((r) => `${r.inputs.kind} ${r.inputs.metadata.namespace ?? ""}/${r.inputs.metadata.name}`)
                .filter((id) => !stored.has(id));
            expect(missing).toEqual([]);
            expect(declared.length).toBeGreaterThan(40);
        });

        test("the namespaces carry their Pod Security labels", async () => {
            const mock = await runStack("dev");
            const namespaces = mock.ofType("kubernetes:core/v1:Namespace");
            expect(namespaces.map((n) => n.inputs.metadata.name).sort()).toEqual(
                ["cert-manager", "cnpg-system", "fx-ml", "fx-ml-monitoring"].sort(),
            );
            for (const n of namespaces) {
                const labels = find("Namespace", n.inputs.metadata.name).metadata.labels!;
                expect(labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
                expect(labels["pod-security.kubernetes.io/audit"]).toBe("restricted");
            }
        });

        test("fastapi's Deployment: the dev stack's requests, no GPU, its probe paths", () => {
            const d = find("Deployment", "fastapi", "fx-ml");
            const c = d.spec.template.spec.containers.find((x: any) => x.name === "fastapi");
            expect(c.resources.requests).toMatchObject({ cpu: "100m", memory: "512Mi" });
            expect(JSON.stringify(c.resources)).not.toMatch(/nvidia\.com\/gpu/);
            expect(c.readinessProbe.httpGet.path).toBe("/health");
            expect(c.livenessProbe.httpGet.path).toBe("/livez");
            expect(d.spec.replicas).toBe(1);
            // The docker stand-in built nothing: the image is named by its tag, never pinned to a digest.
            expect(c.image).toMatch(/^localhost:5001\/fx-fastapi:ctx-[0-9a-f]{20}$/);
        });

        test("the NetworkPolicies are in the API server as declared", async () => {
            const mock = await runStack("dev");
            for (const r of mock.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy")) {
                const np = find("NetworkPolicy", r.inputs.metadata.name, r.inputs.metadata.namespace);
                expect(np.spec.policyTypes).toEqual(r.inputs.spec.policyTypes);
                expect(np.spec.podSelector).toEqual(r.inputs.spec.podSelector ?? {});
            }
            expect(created.filter((o) => o.kind === "NetworkPolicy").length).toBeGreaterThanOrEqual(
                mock.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy").length,
            );
        });

        test("cert-manager's CRDs and the two ClusterIssuers exist", () => {
            for (const crd of ["certificates", "clusterissuers", "issuers", "certificaterequests"])
                expect(find("CustomResourceDefinition", `${crd}.cert-manager.io`).spec.group).toBe("cert-manager.io");
            expect(find("ClusterIssuer", "fx-ml-selfsigned").spec).toEqual({ selfSigned: {} });
            expect(find("ClusterIssuer", "fx-ml-ca").spec.ca.secretName).toBeTruthy();
        });

        test("every custom resource was created after its CRD, every namespaced object after its Namespace", () => {
            const steps = stepsOf(upRun.events);
            expect(orderViolations(created, steps)).toEqual([]);
            // The check had something to check: custom resources of both charts' CRDs, objects in every namespace.
            const custom = created.filter((o) => /cert-manager\.io|cnpg\.io/.test(o.apiVersion));
            expect(custom.map((o) => o.kind)).toEqual(
                expect.arrayContaining(["ClusterIssuer", "Certificate", "Cluster"]),
            );
        });
    });

    describe("pulumi destroy", () => {
        test("deletes every resource and leaves the stack empty", () => {
            expect(destroyRun.result.summary.result).toBe("succeeded");
            expect(Object.keys(destroyRun.result.summary.resourceChanges ?? {})).toEqual(["delete"]);
            expect(destroyRun.result.summary.resourceChanges!.delete).toBe(
                upRun.result.summary.resourceChanges!.create,
            );
            expect(stackResourcesAfterDestroy).toBe(0);
        });

        test("leaves nothing in the API server but the CRDs the charts keep on purpose, with no instance of them", () => {
            const unexpected = left.filter((o) => !keptOnPurpose(o, left)).map(key);
            if (unexpected.length > 0) throw new Error(`left behind:\n${unexpected.join("\n")}\n${diagnostics()}`);
            // The namespaces the stack owned are gone (not Terminating), and so is everything in them.
            for (const ns of created.filter((o) => o.kind === "Namespace"))
                expect(left.filter((o) => o.metadata.namespace === ns.metadata.name || key(o) === key(ns))).toEqual([]);
            const groups = ["cert-manager.io", "acme.cert-manager.io", "postgresql.cnpg.io"];
            expect(left.filter((o) => !groups.includes(o.spec.group)).map(key)).toEqual([]);
        });
    });
});

describe("the order check itself", () => {
    test("reports a custom resource whose step began before its CRD's step was done", () => {
        const crd: KubeObject = {
            apiVersion: "apiextensions.k8s.io/v1",
            kind: "CustomResourceDefinition",
            metadata: {
                name: "issuers.example.io",
                annotations: { "meta.helm.sh/release-name": "op", "meta.helm.sh/release-namespace": "ops" },
            },
            spec: { group: "example.io", names: { kind: "Issuer" } },
        };
        const issuer: KubeObject = { apiVersion: "example.io/v1", kind: "Issuer", metadata: { name: "mine" } };
        const urn = (type: string, name: string) => `urn:pulumi:dev::fx-ml-pipeline::${type}::${name}`;
        const event = (sequence: number, e: Partial<EngineEvent>) => ({ sequence, timestamp: 0, ...e }) as EngineEvent;
        const events = [
            event(1, {
                resourcePreEvent: {
                    metadata: { urn: urn("kubernetes:helm.sh/v3:Release", "op"), op: "create" } as any,
                },
            }),
            event(2, {
                resourcePreEvent: {
                    metadata: { urn: urn("kubernetes:example.io/v1:Issuer", "mine"), op: "create" } as any,
                },
            }),
            event(3, {
                resOutputsEvent: {
                    metadata: { urn: urn("kubernetes:example.io/v1:Issuer", "mine"), new: { outputs: issuer } } as any,
                },
            }),
            event(4, {
                resOutputsEvent: {
                    metadata: {
                        urn: urn("kubernetes:helm.sh/v3:Release", "op"),
                        new: { outputs: { name: "op", namespace: "ops" } },
                    } as any,
                },
            }),
        ];
        expect(orderViolations([crd, issuer], stepsOf(events))).toEqual([
            "example.io/v1 Issuer mine (step mine, began at event #2) was created before its CRD issuers.example.io (step op, done at event #4)",
        ]);
        // In the right order, nothing to report.
        const fixed = [events[0], events[3], events[1], events[2]].map((e, i) => ({ ...e, sequence: i + 1 }));
        expect(orderViolations([crd, issuer], stepsOf(fixed))).toEqual([]);
    });
});
