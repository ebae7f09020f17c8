/**
 * The API server tier (`npm run test:apiserver`): every Kubernetes object each stack declares, rendered from the mock
 * run exactly as `npm run render` writes it, and every object inside its Helm releases (tools/helm-render.ts, the
 * pinned charts rendered with the values the program passes), goes to a real kube-apiserver (built by
 * scripts/tools.sh): the CRDs the charts install first, the namespaces created for real with their Pod Security
 * labels, then every other object by server-side dry-run with strict field validation and by server-side apply (field
 * manager as Pulumi's provider names it), and each workload's pod template dry-run-created as a Pod so Pod Security is
 * enforced. Any rejection or warning fails the test with the server's own message.
 */
import * as fs from "fs";
import * as path from "path";
import { runStack, ROOT, StackName } from "../../tools/harness";
import { render } from "../../tools/render-lib";
import { ApiServer, startApiServer } from "../../tools/apiserver";
import {
    admitPodTemplate,
    Discovery,
    KubeObject,
    Outcome,
    pulumiFieldManager,
    serverSideApply,
    waitForCrds,
} from "../../tools/kube-apply";
import { renderCharts } from "../../tools/helm-render";

const RESULTS = path.join(ROOT, "out", "apiserver");

/** Admission webhooks whose servers never run here: stored last, or they would intercept the objects after them. */
const WEBHOOK_KINDS = ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"];

/** Outcomes that are not a clean 2xx without warnings, each with the server's message. */
function problems(outcomes: Outcome[]): string[] {
    return outcomes
        .filter((o) => o.status < 200 || o.status >= 300 || o.warnings.length > 0)
        .map(
            (o) =>
                `${o.id}: ${o.message ? `HTTP ${o.status}: ${o.message}` : ""}${o.warnings.map((w) => ` warning: ${w}`).join("")}`,
        );
}

async function installCrds(server: ApiServer, discovery: Discovery, crds: KubeObject[]): Promise<void> {
    const outcomes: Outcome[] = [];
    for (const crd of crds) {
        outcomes.push(await serverSideApply(server, discovery, crd, { dryRun: false, fieldManager: "helm" }));
    }
    expect(problems(outcomes)).toEqual([]);
    await waitForCrds(
        server,
        discovery,
        crds.map((c) => c.metadata.name),
    );
}

/**
 * Each stack as shipped, and gpu with every option of issue 18 on: the cluster restored from the backups of
 * `fx-postgres` to a point in time (docs/data.md, restore runbook), the Celery workers scaled by KEDA and MLflow
 * artifacts in object storage, so the recovery Cluster and ObjectStore meet the operator's and the plugin's CRDs and
 * the ScaledObject and TriggerAuthentication KEDA's. The last number: pod templates of the charts.
 */
const VARIANTS: [string, StackName, Record<string, unknown>, number][] = [
    ["dev", "dev", {}, 11],
    // + the device plugin, its node-feature-discovery and the Barman Cloud plugin
    ["gpu", "gpu", {}, 18],
    [
        "gpu-options",
        "gpu",
        {
            postgresRecoverFrom: "fx-postgres",
            backupServerName: "fx-postgres-2",
            postgresRecoveryTarget: "2026-11-30T14:05:00Z",
            airflowWorkerAutoscaling: true,
            airflowWorkerReplicas: 2,
            mlflowArtifactDestination: "s3://example-org-fx-mlflow/artifacts",
            mlflowArtifactEndpoint: "https://storage.googleapis.com",
        },
        // + KEDA's operator, metrics API server and admission webhooks
        21,
    ],
];

describe.each(VARIANTS)("stack %s on a real kube-apiserver", (variant, stack, config, chartPods) => {
    let server: ApiServer | undefined;
    let discovery: Discovery;
    let namespaces: KubeObject[] = [];
    let others: { resource: string; object: KubeObject; chart: boolean }[] = [];
    let fromCharts = 0;
    const summary: Record<string, number> = {};

    beforeAll(async () => {
        const rendered = render(await runStack(stack, { config }));
        const charts = renderCharts(rendered);
        const objects = rendered.objects.filter((o) => !o.patch);
        namespaces = objects.filter((o) => o.object.kind === "Namespace").map((o) => o.object as KubeObject);
        const chartObjects = charts.flatMap((c) =>
            c.objects
                .filter((o) => o.kind !== "CustomResourceDefinition")
                .map((o) => ({
                    resource: `${c.resource}/${o.kind}/${o.metadata.name}`,
                    object: o as KubeObject,
                    chart: true,
                })),
        );
        fromCharts = chartObjects.length;
        const ours = objects
            .filter((o) => o.object.kind !== "Namespace")
            .map((o) => ({ resource: o.resource, object: o.object as KubeObject, chart: false }));
        // Webhook configurations last: their servers never run here, and once stored they would intercept the rest.
        const all = [...ours, ...chartObjects];
        others = [
            ...all.filter((o) => !WEBHOOK_KINDS.includes(o.object.kind)),
            ...all.filter((o) => WEBHOOK_KINDS.includes(o.object.kind)),
        ];
        server = await startApiServer();
        discovery = new Discovery(server);
        await discovery.refresh();
        const crds = charts.flatMap((c) => c.crds) as KubeObject[];
        await installCrds(server, discovery, crds);
        summary.crds = crds.length;
    }, 600_000);

    afterAll(async () => {
        await server?.stop();
        fs.mkdirSync(RESULTS, { recursive: true });
        const line = `stack ${variant}: ${JSON.stringify(summary)}`;
        fs.writeFileSync(
            path.join(RESULTS, `${variant}.json`),
            JSON.stringify({ stack: variant, ...summary }, null, 2) + "\n",
        );
        process.stdout.write(`[apiserver tier] ${line}\n`);
    });

    const failWithLogs = (list: string[]) => {
        if (list.length > 0)
            throw new Error(`${list.length} refused or warned:\n${list.join("\n")}\n${server!.logs(15)}`);
    };

    /** Server-side apply of every object but the namespaces, one request each; fails with each refusal or warning. */
    const applyOthers = async (dryRun: boolean): Promise<number> => {
        const outcomes: Outcome[] = [];
        for (const { resource, object } of others) {
            const fieldManager = pulumiFieldManager(resource);
            outcomes.push(await serverSideApply(server!, discovery, object, { dryRun, fieldManager }));
        }
        failWithLogs(problems(outcomes));
        return outcomes.length;
    };

    test("the namespaces are created for real, with their Pod Security labels as declared", async () => {
        const outcomes: Outcome[] = [];
        for (const ns of namespaces) {
            outcomes.push(
                await serverSideApply(server!, discovery, ns, {
                    dryRun: false,
                    fieldManager: pulumiFieldManager(`Namespace::${ns.metadata.name}`),
                }),
            );
            // What the controller manager would add to every namespace: the `default` ServiceAccount that
            // admission checks pods against (no controller manager runs here).
            const sa = {
                apiVersion: "v1",
                kind: "ServiceAccount",
                metadata: { name: "default", namespace: ns.metadata.name },
            };
            outcomes.push(await serverSideApply(server!, discovery, sa, { dryRun: false, fieldManager: "fx-test" }));
        }
        failWithLogs(problems(outcomes));
        for (const ns of namespaces) {
            const live = await server!.request("GET", `/api/v1/namespaces/${ns.metadata.name}`);
            const enforce = ns.metadata.labels?.["pod-security.kubernetes.io/enforce"];
            expect(live.body.metadata.labels["pod-security.kubernetes.io/enforce"]).toBe(enforce);
        }
        expect(namespaces.map((n) => n.metadata.name)).toContain("fx-ml");
        summary.namespaces = namespaces.length;
    });

    test("every other object passes server-side dry-run with strict field validation, with no warning", async () => {
        summary.dryRunAccepted = await applyOthers(true);
        summary.fromCharts = fromCharts;
    });

    test("every other object is stored by server-side apply, and reads back as declared", async () => {
        summary.applied = await applyOthers(false);
        // Read one object of each kind back: the server kept what we sent (nothing pruned as unknown).
        const seen = new Set<string>();
        for (const { object } of others) {
            if (seen.has(object.kind)) continue;
            seen.add(object.kind);
            const live = await server!.request("GET", discovery.path(object));
            expect(live.status).toBe(200);
            expect(live.body.metadata.labels ?? {}).toEqual(expect.objectContaining(object.metadata.labels ?? {}));
        }
    });

    test("every workload's pod template is admitted as a Pod under its namespace's Pod Security level", async () => {
        const outcomes: Outcome[] = [];
        const counts = { ours: 0, charts: 0 };
        for (const { object, chart } of others) {
            const o = await admitPodTemplate(server!, object);
            if (!o) continue;
            outcomes.push(o);
            counts[chart ? "charts" : "ours"]++;
        }
        failWithLogs(problems(outcomes));
        // Ours: dev has 6 Deployments, the worker StatefulSet and 4 Jobs (one waits for CloudNativePG's webhook);
        // gpu adds FinGPT.
        expect(counts.ours).toBe(stack === "gpu" ? 12 : 11);
        // The charts' (test/helm-charts.test.ts lists them), per variant.
        expect(counts.charts).toBe(chartPods);
        summary.podTemplatesAdmitted = outcomes.length;
        summary.chartPodTemplates = counts.charts;
    });
});
