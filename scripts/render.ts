/**
 * `npm run render -- <stack>`: runs the program for <stack> under Pulumi mocks and writes what it declares to
 * out/<stack>/: manifests/*.yaml (one Kubernetes object per file), helm-releases.yaml (chart, repo, version and our
 * merged values), charts/<release>.yaml (each release rendered by `helm template` from ../shared/charts, CRDs first)
 * and images.yaml (build settings). Secret values are redacted. One stack per process: the Pulumi
 * runtime keeps global state.
 */
import * as path from "path";
import { ROOT, runStack, StackName, STACKS } from "../tools/harness";
import { render, writeRendered } from "../tools/render-lib";
import { renderCharts, writeCharts } from "../tools/helm-render";

async function main(): Promise<void> {
    const stack = process.argv[2] as StackName;
    if (!STACKS.includes(stack)) {
        throw new Error(
            `usage: npm run render -- <stack>; got '${process.argv[2] ?? ""}', allowed: ${STACKS.join(", ")}`,
        );
    }
    const out = path.join(ROOT, "out", stack);
    const rendered = render(await runStack(stack));
    writeRendered(rendered, out);
    const charts = renderCharts(rendered);
    writeCharts(charts, out);
    const chartObjects = charts.reduce((n, c) => n + c.objects.length, 0);
    console.log(
        `rendered stack ${stack} to ${path.relative(ROOT, out)}/: ${rendered.objects.length} objects, ` +
            `${rendered.releases.length} Helm releases (${chartObjects} objects by helm template in charts/), ` +
            `${rendered.images.length} images`,
    );
}

main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
});
