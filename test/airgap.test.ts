/**
 * docs/airgap.md lists every third-party image each stack's pods can run (what an air-gapped cluster must mirror):
 * the list must equal what the program and its charts render, and every registry host in it must be one the node
 * tier's containerd mirrors (tools/cluster.ts MIRRORED_REGISTRIES).
 */
import * as fs from "fs";
import * as path from "path";
import { MIRRORED_REGISTRIES } from "../tools/cluster";
import { runStack, StackName } from "../tools/harness";
import { renderCharts } from "../tools/helm-render";
import { render } from "../tools/render-lib";
import { ROOT } from "../tools/stacks";
import { registryOf } from "../tools/standins/docker-build";
import { thirdPartyImages } from "../tools/third-party-images";

/** The docs table: image -> the stacks it is listed for. */
function documented(): Map<string, string[]> {
    const rows = fs.readFileSync(path.join(ROOT, "docs", "airgap.md"), "utf8").split("\n");
    const out = new Map<string, string[]>();
    for (const row of rows) {
        const m = /^\| `([^`]+)` \| ([a-z, ]+) \|$/.exec(row);
        if (m)
            out.set(
                m[1],
                m[2].split(",").map((s) => s.trim()),
            );
    }
    return out;
}

async function rendered(stack: StackName): Promise<string[]> {
    const run = await runStack(stack);
    const r = render(run);
    const objects = [...r.objects.map((o) => o.object), ...renderCharts(r).flatMap((c) => c.objects)];
    return thirdPartyImages(objects, String(run.config.registryServer));
}

describe("docs/airgap.md", () => {
    test.each(["dev", "gpu"] as const)(
        "lists exactly the third-party images the %s stack renders",
        async (stack) => {
            const listed = [...documented()].filter(([, stacks]) => stacks.includes(stack)).map(([image]) => image);
            expect(listed.sort()).toEqual(await rendered(stack));
        },
        120_000,
    );

    test("the list is not empty and every registry it names is mirrored by the node tier", () => {
        const images = [...documented().keys()];
        expect(images.length).toBe(18);
        expect(images).toContain("ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie");
        const unmirrored = images.filter((i) => !MIRRORED_REGISTRIES.includes(registryOf(i)));
        expect(unmirrored).toEqual([]);
    });

    test("an image the program does not build is found wherever a pod template names it", () => {
        const objects = [
            {
                apiVersion: "apps/v1",
                kind: "Deployment",
                metadata: { name: "x" },
                spec: {
                    template: {
                        spec: {
                            initContainers: [{ name: "i", image: "quay.io/a/init:1" }],
                            containers: [{ name: "c", image: "registry.example/own/app@sha256:ab" }],
                        },
                    },
                },
            },
            {
                apiVersion: "postgresql.cnpg.io/v1",
                kind: "Cluster",
                metadata: { name: "pg" },
                spec: { imageName: "ghcr.io/b/pg:17" },
            },
        ];
        expect(thirdPartyImages(objects as any, "registry.example/own")).toEqual([
            "ghcr.io/b/pg:17",
            "quay.io/a/init:1",
        ]);
    });
});
