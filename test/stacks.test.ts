import { runStack } from "./harness";

describe("both stacks run to completion under mocks", () => {
    test.each(["dev", "gpu"] as const)("%s stack declares its namespaces", async (stack) => {
        const run = await runStack(stack);
        const names = run.ofType("kubernetes:core/v1:Namespace").map((r) => r.inputs.metadata.name);
        expect(names).toEqual(expect.arrayContaining(["fx-ml", "fx-ml-monitoring"]));
        expect(run.outputs.namespace.value).toBe("fx-ml");
    });
});
