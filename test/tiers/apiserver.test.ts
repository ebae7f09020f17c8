/**
 * The API server tier (`npm run test:apiserver`): every Kubernetes object each stack declares, rendered from the mock
 * run exactly as `npm run render` writes it, goes to a real kube-apiserver (built by scripts/tools.sh): the CRDs the
 * stack installs first, the namespaces created for real with their Pod Security labels, then every other object by
 * server-side dry-run with strict field validation and by server-side apply (field manager as Pulumi's provider
 * names it), and each workload's pod template dry-run-created as a Pod so Pod Security is enforced. Any rejection or
 * warning fails the test with the server's own message.
 */
import * as fs from "fs";
import * as path from "path";
import { runStack, ROOT, StackName } from "../harness";
import { render } from "../render-lib";
import { ApiServer, KUBERNETES_VERSION, startApiServer } from "../../tools/apiserver";
import {
    admitPodTemplate,
    Discovery,
    helm,
    KubeObject,
    Outcome,
    parseObjects,
    pulumiFieldManager,
    serverSideApply,
    waitForCrds,
} from "../../tools/kube-apply";

const SHARED = path.resolve(ROOT, "..", "shared");
const RESULTS = path.join(ROOT, "out", "apiserver");

/** The CRDs the stacks' charts install: cert-manager's from ../shared/crds, CloudNativePG's from its chart. */
function stackCrds(): KubeObject[] {
    const certManager = path.join(SHARED, "crds", "cert-manager-v1.19.1");
    const crds = fs
        .readdirSync(certManager)
        .filter((f) => f.endsWith(".yaml"))
        .flatMap((f) => parseObjects(fs.readFileSync(path.join(certManager, f), "utf8")));
    const cnpg = helm([
        "template",
        "cnpg",
        path.join(SHARED, "charts", "cloudnative-pg-0.29.0.tgz"),
        "--namespace",
        "cnpg-system",
        "--kube-version",
        KUBERNETES_VERSION,
        "--show-only",
        "templates/crds/crds.yaml",
    ]);
    return [...crds, ...parseObjects(cnpg)].filter((o) => o.kind === "CustomResourceDefinition");
}

/** Outcomes that are not a clean 2xx without warnings, each with the server's message. */
function problems(outcomes: Outcome[]): string[] {
    return outcomes
        .filter((o) => o.status < 200 || o.status >= 300 || o.warnings.length > 0)
        .map(
            (o) =>
                `${o.id}: ${o.message ? `HTTP ${o.status}: ${o.message}` : ""}${o.warnings.map((w) => ` warning: ${w}`).join("")}`,
        );
}

async function installCrds(server: ApiServer, discovery: Discovery): Promise<string[]> {
    const crds = stackCrds();
    const outcomes: Outcome[] = [];
    for (const crd of crds) {
        outcomes.push(await serverSideApply(server, discovery, crd, { dryRun: false, fieldManager: "fx-test-crds" }));
    }
    expect(problems(outcomes)).toEqual([]);
    await waitForCrds(
        server,
        discovery,
        crds.map((c) => c.metadata.name),
    );
    return crds.map((c) => c.metadata.name);
}

describe.each<StackName>(["dev", "gpu"])("stack %s on a real kube-apiserver", (stack) => {
    let server: ApiServer | undefined;
    let discovery: Discovery;
    let namespaces: KubeObject[] = [];
    let others: { resource: string; object: KubeObject }[] = [];
    const summary: Record<string, number> = {};

    beforeAll(async () => {
        const rendered = render(await runStack(stack));
        const objects = rendered.objects.filter((o) => !o.patch);
        namespaces = objects.filter((o) => o.object.kind === "Namespace").map((o) => o.object as KubeObject);
        others = objects
            .filter((o) => o.object.kind !== "Namespace")
            .map((o) => ({ resource: o.resource, object: o.object as KubeObject }));
        server = await startApiServer();
        discovery = new Discovery(server);
        await discovery.refresh();
        summary.crds = (await installCrds(server, discovery)).length;
    }, 600_000);

    afterAll(async () => {
        await server?.stop();
        fs.mkdirSync(RESULTS, { recursive: true });
        const line = `stack ${stack}: ${JSON.stringify(summary)}`;
        fs.writeFileSync(path.join(RESULTS, `${stack}.json`), JSON.stringify({ stack, ...summary }, null, 2) + "\n");
        process.stdout.write(`[apiserver tier] ${line}\n`);
    });

    const failWithLogs = (list: string[]) => {
        if (list.length > 0)
            throw new Error(`${list.length} refused or warned:\n${list.join("\n")}\n${server!.logs(15)}`);
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
        const outcomes: Outcome[] = [];
        for (const { resource, object } of others) {
            outcomes.push(
                await serverSideApply(server!, discovery, object, {
                    dryRun: true,
                    fieldManager: pulumiFieldManager(resource),
                }),
            );
        }
        failWithLogs(problems(outcomes));
        summary.dryRunAccepted = outcomes.length;
    });

    test("every other object is stored by server-side apply, and reads back as declared", async () => {
        const outcomes: Outcome[] = [];
        for (const { resource, object } of others) {
            outcomes.push(
                await serverSideApply(server!, discovery, object, {
                    dryRun: false,
                    fieldManager: pulumiFieldManager(resource),
                }),
            );
        }
        failWithLogs(problems(outcomes));
        summary.applied = outcomes.length;
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
        for (const { object } of others) {
            const o = await admitPodTemplate(server!, object);
            if (o) outcomes.push(o);
        }
        failWithLogs(problems(outcomes));
        // dev: 6 Deployments, the worker StatefulSet, 3 Jobs; gpu adds FinGPT.
        expect(outcomes.length).toBe(stack === "gpu" ? 11 : 10);
        summary.podTemplatesAdmitted = outcomes.length;
    });
});
