/**
 * `npm run footprint -- <stack>`: writes bench/results/footprint-<stack>.md, the CPU, memory, GPU and storage the
 * stack requests and limits per component (objects and Helm values), and prints the totals against the stack's aims:
 * dev fits a laptop's kind cluster (<= 3 CPU and 6 GiB requested), gpu asks for exactly the configured GPUs.
 */
import * as fs from "fs";
import * as path from "path";
import { ROOT, runStack, StackName, STACKS } from "../tools/harness";
import { render } from "../tools/render-lib";
import { footprint, footprintMarkdown } from "./footprint-figures";

const DEV_CPU_CORES = 3;
const DEV_MEMORY_GIB = 6;

async function main(): Promise<void> {
    const stack = process.argv[2] as StackName;
    if (!STACKS.includes(stack)) {
        throw new Error(
            `usage: npm run footprint -- <stack>; got '${process.argv[2] ?? ""}', allowed: ${STACKS.join(", ")}`,
        );
    }
    const run = await runStack(stack);
    const f = footprint(render(run));
    const cores = f.total.cpuRequest / 1000;
    const gib = f.total.memoryRequest / 2 ** 30;
    // gpuCount is per FinGPT pod, the only GPU workload.
    const gpuConfigured = run.config.gpuEnabled && run.config.fingptEnabled ? Number(run.config.gpuCount ?? 0) : 0;
    const aims =
        stack === "dev"
            ? [
                  `aim: requests <= ${DEV_CPU_CORES} CPU and <= ${DEV_MEMORY_GIB} GiB for a laptop's kind cluster: ` +
                      `${cores.toFixed(2)} CPU (${cores <= DEV_CPU_CORES ? "met" : "MISSED"}), ` +
                      `${gib.toFixed(2)} GiB (${gib <= DEV_MEMORY_GIB ? "met" : "MISSED"})`,
              ]
            : [
                  `aim: GPUs requested = GPUs configured (gpuCount ${gpuConfigured}): ${f.total.gpu} ` +
                      `(${f.total.gpu === gpuConfigured ? "met" : "MISSED"})`,
              ];
    const file = path.join(ROOT, "bench", "results", `footprint-${stack}.md`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, footprintMarkdown(f, aims));
    console.log(`wrote ${path.relative(ROOT, file)}`);
    for (const a of aims) console.log(a);
}

main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
});
