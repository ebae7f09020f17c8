import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { ROOT, runStack, StackName, StackRun } from "../tools/harness";

/** Package of a resource type token ("kubernetes:apps/v1:Deployment" -> "kubernetes"). */
const pkg = (type: string) => type.split(":")[0];

function clusterProvider(run: StackRun) {
    const providers = run.ofType("pulumi:providers:kubernetes");
    expect(providers.map((p) => p.name)).toEqual(["cluster"]);
    return providers[0];
}

describe("every Kubernetes resource goes to the stack's named cluster", () => {
    const expected: Record<StackName, string> = { dev: "kind-fx-ml", gpu: "fx-ml-gpu" };

    test.each(["dev", "gpu"] as const)(
        "%s: one explicit provider, used by every Kubernetes resource",
        async (stack) => {
            const run = await runStack(stack);
            const provider = clusterProvider(run);
            expect(provider.inputs.context).toBe(expected[stack]);
            expect(provider.inputs.kubeconfig).toBeUndefined();
            const ref = `${provider.urn}::${provider.state.id ?? "cluster-id"}`;

            const kube = run.resources.filter((r) => r.custom && pkg(r.type) === "kubernetes");
            expect(kube.length).toBeGreaterThan(50);
            // A resource with provider "" would go to the engine's default provider: the current kubeconfig context.
            const elsewhere = kube.filter((r) => r.provider !== ref).map((r) => `${r.type} ${r.name}: '${r.provider}'`);
            expect(elsewhere).toEqual([]);
        },
    );

    test("cert-manager, a remote component, is handed the cluster provider", async () => {
        const run = await runStack("dev");
        const provider = clusterProvider(run);
        const certManager = run.one("kubernetes-cert-manager:index:CertManager", "cert-manager");
        expect(certManager.providers.kubernetes).toBe(`${provider.urn}::cluster-id`);
    });

    test("every remote component (CertManager, charts) carries the provider: it does not inherit its parent's", async () => {
        const run = await runStack("gpu");
        const provider = clusterProvider(run);
        const remote = run.resources.filter((r) => !r.custom && !["fx", "pulumi"].includes(pkg(r.type)));
        expect(remote.map((r) => r.type)).toEqual(["kubernetes-cert-manager:index:CertManager"]);
        for (const r of remote)
            expect([r.type, r.providers.kubernetes]).toEqual([r.type, `${provider.urn}::cluster-id`]);
    });

    test("the project disables the engine's default Kubernetes provider for every stack, and the program sees it", async () => {
        const doc = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
        expect(doc.config["pulumi:disable-default-providers"]).toEqual({ value: ["kubernetes"] });
        const run = await runStack("gpu");
        expect(run.config["pulumi:disable-default-providers"]).toEqual(["kubernetes"]);
    });

    test("kubeconfig names the file the provider reads (~ expanded), never its contents", async () => {
        const dir = fs.mkdtempSync(path.join(os.homedir(), ".fx-kubeconfig-test-"));
        try {
            const file = path.join(dir, "config");
            fs.writeFileSync(file, "apiVersion: v1\nkind: Config\n");
            const run = await runStack("dev", {
                config: { kubeconfig: `~/${path.basename(dir)}/config`, kubeContext: "fx-ml" },
            });
            expect(clusterProvider(run).inputs).toMatchObject({ context: "fx-ml", kubeconfig: file });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("a stack without a usable target is refused before any resource", () => {
    async function failure(config: Record<string, unknown>) {
        try {
            await runStack("dev", { config });
        } catch (e) {
            return e as Error & { registered: unknown[] };
        }
        throw new Error("expected the stack to be refused");
    }

    test("no kubeContext", async () => {
        const e = await failure({ kubeContext: undefined });
        expect(e.message).toContain("Configuration 'fx-ml-pipeline:kubeContext' value \"<unset>\" is invalid");
        expect(e.message).toContain(
            "every stack names its cluster: pulumi config set kubeContext <context> --stack dev",
        );
        expect(e.registered).toEqual([]);
    });

    test("an empty kubeContext", async () => {
        const e = await failure({ kubeContext: " " });
        expect(e.message).toContain("fx-ml-pipeline:kubeContext");
        expect(e.message).toContain("kubectl config get-contexts");
        expect(e.registered).toEqual([]);
    });

    test("a kubeconfig file that does not exist", async () => {
        const e = await failure({ kubeconfig: "/nonexistent/kubeconfig" });
        expect(e.message).toContain("'fx-ml-pipeline:kubeconfig' value \"/nonexistent/kubeconfig\" is invalid");
        expect(e.message).toContain("must be the path of an existing kubeconfig file");
        expect(e.registered).toEqual([]);
    });

    test("kubeconfig contents pasted into config, which are not echoed back", async () => {
        const contents = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.0.0.1\n";
        const e = await failure({ kubeconfig: contents });
        expect(e.message).toContain("'fx-ml-pipeline:kubeconfig' value \"<kubeconfig contents>\" is invalid");
        expect(e.message).toContain("must be the path of a kubeconfig file, not its contents");
        expect(e.message).not.toContain("10.0.0.1");
        expect(e.registered).toEqual([]);
    });

    test("a kubernetes:context setting, which only the unused default provider would read", async () => {
        const e = await failure({ "kubernetes:context": "prod-cluster" });
        expect(e.message).toContain("'kubernetes:context' value \"prod-cluster\" is invalid");
        expect(e.message).toContain("name the cluster with fx-ml-pipeline:kubeContext");
        expect(e.registered).toEqual([]);
    });
});
