import { liveRun, runStack } from "../tools/harness";

describe("both stacks run to completion under mocks", () => {
    test.each(["dev", "gpu"] as const)(
        "%s stack declares its namespaces; its recorded run is the run",
        async (stack) => {
            const run = await runStack(stack);
            const names = run.ofType("kubernetes:core/v1:Namespace").map((r) => r.inputs.metadata.name);
            expect(names).toEqual(expect.arrayContaining(["fx-ml", "fx-ml-monitoring"]));
            expect(run.outputs.namespace.value).toBe("fx-ml");
            // The run every suite shares (recorded once by test/record-runs.ts in another process) is what the program
            // declares here and now, to the last input, and a test that changes its copy changes no one else's.
            const { stack: s, resources, outputs, config, warnings, sentinels } = run;
            expect({ stack: s, resources, outputs, config, warnings, sentinels }).toStrictEqual(await liveRun(stack));
            const count = run.resources.length;
            run.resources.length = 0;
            run.outputs.namespace.value = "changed";
            const again = await runStack(stack);
            expect(again.resources.length).toBe(count);
            expect(again.outputs.namespace.value).toBe("fx-ml");
        },
    );
});
