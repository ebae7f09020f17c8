import { reveal, runProgram, runStack } from "../tools/harness";

const TAINT = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };

describe("NVIDIA device plugin", () => {
    test("the chart's NFD affinity is replaced by the GPU pool's labels, and the pool's taint is tolerated", async () => {
        const run = await runProgram(() => {
            const { GpuDevicePlugin } = require("../components/platform/gpu");
            new GpuDevicePlugin("nvidia", {
                charts: new (require("../lib/chart-values").HelmCharts)({ kind: "public" }),
                namespace: "nvidia-device-plugin",
                nodeSelector: { "cloud.google.com/gke-accelerator": "nvidia-l4", pool: "gpu" },
                tolerations: [TAINT],
            });
        });
        const rel = run.one("kubernetes:helm.sh/v3:Release", "nvidia");
        expect(rel.inputs).toMatchObject({
            chart: "nvidia-device-plugin",
            version: "0.20.0",
            repositoryOpts: { repo: "https://nvidia.github.io/k8s-device-plugin" },
            namespace: "nvidia-device-plugin",
        });
        const values = reveal(rel.inputs.values);
        expect(values.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
            {
                matchExpressions: [
                    { key: "cloud.google.com/gke-accelerator", operator: "In", values: ["nvidia-l4"] },
                    { key: "pool", operator: "In", values: ["gpu"] },
                ],
            },
        ]);
        expect(values.tolerations).toContainEqual(TAINT);
        // Static values from charts-values/nvidia-device-plugin.yaml survive the merge.
        expect(values.gfd.enabled).toBe(false);
        expect(values.resources.limits.memory).toBe("128Mi");
    });

    test("a fresh GPU pool needs no hand labels: the chart's node-feature-discovery labels it, the plugin and FinGPT select that label", async () => {
        const gpu = await runStack("gpu");
        const dev = await runStack("dev");
        const rel = gpu.one("kubernetes:helm.sh/v3:Release", /nvidia/);
        const values = reveal(rel.inputs.values);
        // The subchart runs (condition nfd.enabled) and its worker tolerates the pool's taint, so it reaches the GPU
        // nodes and sets feature.node.kubernetes.io/pci-10de.present=true on each.
        expect(values.nfd.enabled).toBe(true);
        expect(values.nfd.worker.tolerations).toEqual([TAINT]);
        expect(values.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toEqual([
            {
                matchExpressions: [
                    { key: "feature.node.kubernetes.io/pci-10de.present", operator: "In", values: ["true"] },
                ],
            },
        ]);
        const fingpt = gpu.one("kubernetes:apps/v1:Deployment", /fingpt/);
        expect(fingpt.inputs.spec.template.spec.nodeSelector).toEqual({
            "feature.node.kubernetes.io/pci-10de.present": "true",
        });
        expect(
            dev.ofType("kubernetes:helm.sh/v3:Release").filter((r) => r.inputs.chart === "nvidia-device-plugin"),
        ).toEqual([]);
    });
});
