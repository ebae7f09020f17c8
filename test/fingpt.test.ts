import { runProgram, runStack } from "../tools/harness";

const IMAGE = "ghcr.io/example-org/fx-ml/fx-fingpt@sha256:" + "e".repeat(64);
const TAINT = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };

function program(mode: "model" | "lexicon", count = 1) {
    return () => {
        const pulumi = require("@pulumi/pulumi");
        const { Fingpt } = require("../components/apps/fingpt");
        new Fingpt("fx", {
            namespace: "fx-ml",
            image: IMAGE,
            mode,
            baseModel: "meta-llama/Llama-2-7b-chat-hf",
            adapter: "FinGPT/fingpt-mt_llama2-7b_lora",
            gpu: { count, nodeSelector: { "nvidia.com/gpu.present": "true" }, tolerations: [TAINT] },
            resources: { cpuRequest: "2", cpuLimit: "4", memory: "24Gi" },
            cache: { size: "50Gi", storageClass: "standard-rwo", retainOnDelete: true },
            hfToken: { name: pulumi.output("huggingface"), key: "token" },
        });
    };
}

const podOf = (run: any) => run.one("kubernetes:apps/v1:Deployment", "fingpt").inputs.spec.template.spec;

describe("fingpt", () => {
    test("model mode requests the configured GPUs on the GPU pool: limit, node selector, toleration", async () => {
        const run = await runProgram(program("model", 2));
        const pod = podOf(run);
        const c = pod.containers[0];
        expect(c.resources.limits["nvidia.com/gpu"]).toBe("2");
        expect(pod.nodeSelector).toEqual({ "nvidia.com/gpu.present": "true" });
        expect(pod.tolerations).toEqual([TAINT]);
    });

    test("model mode: cache PVC at HF_HOME, /dev/shm in memory, token by reference, long startup on /ready", async () => {
        const run = await runProgram(program("model"));
        const pvc = run.one("kubernetes:core/v1:PersistentVolumeClaim", "fx-model-cache").inputs;
        expect(pvc.spec).toMatchObject({
            accessModes: ["ReadWriteOnce"],
            storageClassName: "standard-rwo",
            resources: { requests: { storage: "50Gi" } },
        });
        const pod = podOf(run);
        const c = pod.containers[0];
        expect(pod.volumes).toContainEqual({ name: "dshm", emptyDir: { medium: "Memory", sizeLimit: "2Gi" } });
        expect(c.volumeMounts).toContainEqual({ name: "dshm", mountPath: "/dev/shm" });
        expect(c.volumeMounts).toContainEqual({ name: "model-cache", mountPath: "/var/cache/huggingface" });
        const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
        expect(env).toMatchObject({
            FINGPT_MODE: "model",
            FINGPT_BASE_MODEL: "meta-llama/Llama-2-7b-chat-hf",
            FINGPT_ADAPTER: "FinGPT/fingpt-mt_llama2-7b_lora",
            HF_HOME: "/var/cache/huggingface",
        });
        expect(env.HF_TOKEN).toEqual({ secretKeyRef: { name: "huggingface", key: "token" } });
        expect(c.image).toBe(IMAGE);
        expect(c.command).toEqual(["uvicorn", "fingpt_service.server:app", "--host", "0.0.0.0", "--port", "8001"]);
        expect(c.startupProbe).toMatchObject({
            httpGet: { path: "/ready", port: "http" },
            periodSeconds: 10,
            failureThreshold: 60,
        });
        expect(c.readinessProbe.httpGet.path).toBe("/ready");
        expect(c.livenessProbe.httpGet.path).toBe("/health");
        const dep = run.one("kubernetes:apps/v1:Deployment", "fingpt").inputs;
        expect(dep.spec.strategy).toEqual({ type: "Recreate" });
        const svc = run.one("kubernetes:core/v1:Service", "fingpt").inputs;
        expect(svc.spec.ports[0]).toMatchObject({ port: 8001, targetPort: "http" });
    });

    test("lexicon mode runs on CPU: no GPU limit, no GPU node selector or tolerations, no model cache", async () => {
        const run = await runProgram(program("lexicon"));
        const pod = podOf(run);
        expect(pod.containers[0].resources.limits).not.toHaveProperty(["nvidia.com/gpu"]);
        expect(pod.nodeSelector).toBeUndefined();
        expect(pod.tolerations).toBeUndefined();
        expect(run.ofType("kubernetes:core/v1:PersistentVolumeClaim")).toEqual([]);
    });

    test("the gpu stack deploys FinGPT on the GPU pool; the dev stack has no FinGPT", async () => {
        const gpu = await runStack("gpu");
        const dev = await runStack("dev");
        const pod = podOf(gpu);
        expect(pod.containers[0].resources.limits["nvidia.com/gpu"]).toBe("1");
        // The label the device plugin chart's node-feature-discovery sets on NVIDIA nodes: no hand labels needed.
        expect(pod.nodeSelector).toEqual({ "feature.node.kubernetes.io/pci-10de.present": "true" });
        expect(pod.tolerations).toEqual([TAINT]);
        expect(dev.ofType("kubernetes:apps/v1:Deployment", "fingpt")).toEqual([]);
        expect(dev.ofType("kubernetes:core/v1:Service", "fingpt")).toEqual([]);
    });
});
