import { runStack, StackName, StackRun } from "./harness";

/**
 * Runs the stack and also records each resource's `retainOnDelete` and `protect` options (the harness records
 * inputs, not options) by wrapping the mock monitor inside the run's own module registry.
 */
export async function runWithOptions(
    stack: StackName,
): Promise<{ run: StackRun; retained: Map<string, boolean>; protectedRes: Map<string, boolean> }> {
    const retained = new Map<string, boolean>();
    const protectedRes = new Map<string, boolean>();
    const run = await runStack(stack, {
        program: () => {
            const proto = require("@pulumi/pulumi/runtime/mocks").MockMonitor.prototype;
            const inner = proto.registerResource;
            proto.registerResource = function (req: any, callback: any) {
                retained.set(`${req.getType()}::${req.getName()}`, req.getRetainondelete() === true);
                protectedRes.set(`${req.getType()}::${req.getName()}`, req.getProtect() === true);
                return inner.call(this, req, callback);
            };
            return require("../index");
        },
    });
    return { run, retained, protectedRes };
}
