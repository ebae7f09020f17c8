import { runStack, StackName, StackRun } from "../tools/harness";

/** Runs the stack and indexes each resource's `retainOnDelete` and `protect` options by `type::name`. */
export async function runWithOptions(
    stack: StackName,
): Promise<{ run: StackRun; retained: Map<string, boolean>; protectedRes: Map<string, boolean> }> {
    const run = await runStack(stack);
    const key = (r: StackRun["resources"][number]) => `${r.type}::${r.name}`;
    return {
        run,
        retained: new Map(run.resources.map((r) => [key(r), r.options.retainOnDelete])),
        protectedRes: new Map(run.resources.map((r) => [key(r), r.options.protect])),
    };
}
