import * as fs from "fs";
import * as path from "path";
import { PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import {
    allowedRegistries,
    dataRetained,
    gpuTolerations,
    helmPinned,
    noLatestImages,
    noLoadBalancer,
    noSecretLiteralInEnv,
    podSecurityRestricted,
    policies,
    probes,
    requestsAndLimits,
    restrictedViolations,
} from "../policy/policies";
import { podSpecOf, WORKLOADS } from "../policy/pods";
import { reveal, ROOT, runStack, StackName, stackConfig, StackRun } from "../tools/harness";

type PolicyConfig = Record<string, Record<string, unknown>>;
type Options = { protect: boolean; retainOnDelete: boolean };

/** The policy config a stack is previewed with (`--policy-pack-config policy/config/<stack>.json`). */
function policyConfig(stack: StackName): PolicyConfig {
    return JSON.parse(fs.readFileSync(path.join(ROOT, "policy", "config", `${stack}.json`), "utf8"));
}

/**
 * Calls a policy the way the analyzer does (cf. pulumi-policy sdk/nodejs/policy/tests/util.ts) and returns the
 * messages it reported.
 */
async function validate(
    policy: ResourceValidationPolicy,
    resource: { type: string; props: Record<string, any>; name?: string; opts?: Partial<Options> },
    config: Record<string, unknown> = {},
): Promise<string[]> {
    const messages: string[] = [];
    const opts: PolicyResourceOptions & { retainOnDelete?: boolean } = {
        protect: resource.opts?.protect ?? false,
        ignoreChanges: [],
        aliases: [],
        customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
        additionalSecretOutputs: [],
    };
    const name = resource.name ?? "example";
    const args: ResourceValidationArgs = {
        type: resource.type,
        props: resource.props,
        urn: `urn:pulumi:test::fx-ml-pipeline::${resource.type}::${name}`,
        name,
        opts,
        stackTags: new Map(),
        isType: (cls) => (cls as any).__pulumiType === resource.type,
        asType: ((cls: any) => (cls.__pulumiType === resource.type ? resource.props : undefined)) as any,
        getConfig: <T extends object>() => config as T,
        notApplicable: (reason?: string) => {
            throw new Error(`not applicable: ${reason}`);
        },
    };
    const v0 = policy.validateResource ?? [];
    const validations = Array.isArray(v0) ? v0 : [v0];
    for (const v of validations) await v(args, (message) => messages.push(message));
    return messages;
}

// ---------------------------------------------------------------------------------------------------------------
// A compliant Deployment, and one broken copy per rule.
// ---------------------------------------------------------------------------------------------------------------

const DEPLOYMENT = "kubernetes:apps/v1:Deployment";

function goodContainer(): Record<string, any> {
    return {
        name: "app",
        image: "localhost:5001/fx-fastapi@sha256:" + "a".repeat(64),
        ports: [{ name: "http", containerPort: 8000 }],
        env: [{ name: "REDIS_PASSWORD", valueFrom: { secretKeyRef: { name: "fx-redis-auth", key: "password" } } }],
        resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: "256Mi" } },
        livenessProbe: { httpGet: { path: "/health", port: "http" } },
        readinessProbe: { httpGet: { path: "/health", port: "http" } },
        securityContext: {
            allowPrivilegeEscalation: false,
            runAsNonRoot: true,
            capabilities: { drop: ["ALL"] },
            seccompProfile: { type: "RuntimeDefault" },
        },
    };
}

function deployment(mutate: (pod: Record<string, any>, container: Record<string, any>) => void = () => {}) {
    const container = goodContainer();
    const pod: Record<string, any> = {
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
        containers: [container],
        volumes: [{ name: "tmp", emptyDir: {} }],
    };
    mutate(pod, container);
    return { type: DEPLOYMENT, props: { metadata: { name: "fastapi" }, spec: { template: { spec: pod } } } };
}

describe("policy pack: every policy over every resource of both stacks", () => {
    const runs: Partial<Record<StackName, StackRun>> = {};
    beforeAll(async () => {
        runs.dev = await runStack("dev");
        runs.gpu = await runStack("gpu");
    });

    test.each(["dev", "gpu"] as const)("%s: zero violations with its policy/config file", async (stack) => {
        const run = runs[stack]!;
        const config = policyConfig(stack);
        const violations: string[] = [];
        for (const r of run.resources) {
            if (!r.custom) continue; // CrossGuard validates resources the engine registers with a provider
            const resource = {
                type: r.type,
                name: r.name,
                props: reveal(r.inputs),
                opts: r.options,
            };
            for (const p of policies) {
                for (const m of await validate(p, resource, config[p.name] ?? {})) {
                    violations.push(`${p.name}: ${r.type} ${r.name}: ${m}`);
                }
            }
        }
        expect(violations).toEqual([]);
        // The pod rules had pods to judge: every workload of the stack (9 on dev, 10 with FinGPT on gpu).
        expect(run.resources.filter((r) => WORKLOADS.includes(r.type)).length).toBeGreaterThanOrEqual(9);
    });

    test.each(["dev", "gpu"] as const)(
        "%s: every workload's pod meets the restricted Pod Security Standard",
        (stack) => {
            const run = runs[stack]!;
            const found = run.resources
                .filter((r) => WORKLOADS.includes(r.type))
                .flatMap((r) =>
                    restrictedViolations(podSpecOf(r.type, reveal(r.inputs))!).map((m) => `${r.type} ${r.name}: ${m}`),
                );
            expect(found).toEqual([]);
        },
    );

    test.each(["dev", "gpu"] as const)("%s: the policy config agrees with the stack file", (stack) => {
        const cfg = policyConfig(stack);
        const stackCfg = stackConfig(stack);
        expect(cfg["images-from-allowed-registries"].registry).toBe(stackCfg.registryServer);
        expect(cfg["data-volumes-retained"].required).toBe(stackCfg.retainDataOnDelete);
        for (const name of Object.keys(cfg)) expect(policies.map((p) => p.name)).toContain(name);
    });

    test.each(["dev", "gpu"] as const)(
        "%s: namespaces enforce restricted, except the device plugin's (privileged, with a reason)",
        (stack) => {
            const run = runs[stack]!;
            const namespaces = run.ofType("kubernetes:core/v1:Namespace");
            expect(namespaces.length).toBeGreaterThanOrEqual(3);
            for (const ns of namespaces) {
                const { labels, annotations } = ns.inputs.metadata;
                const level = ns.inputs.metadata.name === "nvidia-device-plugin" ? "privileged" : "restricted";
                expect([ns.name, labels["pod-security.kubernetes.io/enforce"]]).toEqual([ns.name, level]);
                expect(labels["pod-security.kubernetes.io/warn"]).toBe(level);
                expect(labels["pod-security.kubernetes.io/audit"]).toBe("restricted");
                if (level === "privileged")
                    expect(annotations["fx-ml-pipeline/pod-security-reason"]).toMatch(/hostPath/);
            }
            expect(namespaces.some((n) => n.inputs.metadata.name === "nvidia-device-plugin")).toBe(stack === "gpu");
        },
    );
});

describe("policy pack: each rule reports a bad example with its message", () => {
    test("the compliant example passes every policy", async () => {
        for (const p of policies) expect([p.name, await validate(p, deployment())]).toEqual([p.name, []]);
    });

    test.each([
        ["':latest' tag", (_p: any, c: any) => (c.image = "localhost:5001/fx-fastapi:latest"), "uses ':latest'"],
        ["untagged image", (_p: any, c: any) => (c.image = "localhost:5001/fx-fastapi"), "has no tag"],
    ])("no-latest-or-untagged-image: %s", async (_name, mutate, message) => {
        expect(await validate(noLatestImages, deployment(mutate))).toEqual([expect.stringContaining(message)]);
        expect(
            await validate(
                noLatestImages,
                deployment((_p, c) => (c.image = "redis:7.4.6")),
            ),
        ).toEqual([]);
    });

    test("images-from-allowed-registries: another registry is rejected, the allow-list admits by prefix", async () => {
        const hub = deployment((_p, c) => (c.image = "redis:7.4.6"));
        expect(await validate(allowedRegistries, hub, { registry: "localhost:5001", allowList: [] })).toEqual([
            "container app image 'redis:7.4.6' is not from the stack's registry 'localhost:5001' or the allow-list [].",
        ]);
        expect(await validate(allowedRegistries, hub, { registry: "localhost:5001", allowList: ["redis"] })).toEqual(
            [],
        );
        // A prefix matches whole path segments only: ghcr.io/org does not admit ghcr.io/organisation.
        const lookalike = deployment((_p, c) => (c.image = "ghcr.io/example-org-evil/fx-fastapi:1.0"));
        expect(await validate(allowedRegistries, lookalike, { registry: "ghcr.io/example-org" })).toHaveLength(1);
    });

    test("requests-and-limits: a container without limits is reported with what is missing", async () => {
        const bad = deployment((_p, c) => (c.resources = { requests: { cpu: "100m", memory: "1Gi" } }));
        expect(await validate(requestsAndLimits, bad)).toEqual(["container app has no limits.cpu, limits.memory."]);
    });

    test("probes-on-long-running-containers: no liveness probe, no readiness on a served port; Jobs are exempt", async () => {
        const bad = deployment((_p, c) => {
            delete c.livenessProbe;
            delete c.readinessProbe;
        });
        expect(await validate(probes, bad)).toEqual([
            "container app has no livenessProbe.",
            "container app serves port(s) but has no readinessProbe.",
        ]);
        const job = { type: "kubernetes:batch/v1:Job", props: bad.props };
        expect(await validate(probes, job)).toEqual([]);
    });

    test.each([
        [
            "runAsNonRoot unset",
            (p: any, c: any) => (delete p.securityContext.runAsNonRoot, delete c.securityContext.runAsNonRoot),
            "runAsNonRoot: true",
        ],
        [
            "privilege escalation",
            (_p: any, c: any) => (c.securityContext.allowPrivilegeEscalation = true),
            "allowPrivilegeEscalation: false",
        ],
        [
            "capabilities kept",
            (_p: any, c: any) => (c.securityContext.capabilities = { drop: ["NET_RAW"] }),
            "drop ALL",
        ],
        [
            "seccomp unset",
            (p: any, c: any) => (delete p.securityContext.seccompProfile, delete c.securityContext.seccompProfile),
            "RuntimeDefault",
        ],
        ["privileged", (_p: any, c: any) => (c.securityContext.privileged = true), "is privileged"],
        ["hostNetwork", (p: any) => (p.hostNetwork = true), "hostNetwork: true"],
        [
            "hostPath volume",
            (p: any) => p.volumes.push({ name: "dev", hostPath: { path: "/dev" } }),
            "volume dev is of type hostPath",
        ],
        ["root user", (_p: any, c: any) => (c.securityContext.runAsUser = 0), "user 0"],
    ])("pod-security-restricted: %s", async (_name, mutate, message) => {
        expect(await validate(podSecurityRestricted, deployment(mutate))).toEqual([expect.stringContaining(message)]);
    });

    test("no-secret-literal-in-env: a literal token is reported; references, _FILE paths and other names pass", async () => {
        const bad = deployment((_p, c) =>
            c.env.push(
                { name: "HF_TOKEN", value: "hf_abc" },
                { name: "AIRFLOW__CORE__FERNET_KEY", value: "x" },
                { name: "OANDA_TOKEN_FILE", value: "/var/run/secrets/oanda/token" },
                { name: "MLFLOW_TRACKING_URI", value: "http://mlflow:5000" },
            ),
        );
        expect(await validate(noSecretLiteralInEnv, bad)).toEqual([
            "container app env HF_TOKEN is a literal value: use valueFrom.secretKeyRef.",
            "container app env AIRFLOW__CORE__FERNET_KEY is a literal value: use valueFrom.secretKeyRef.",
        ]);
    });

    test("no-loadbalancer-service: rejected unless the stack allows it", async () => {
        const svc = {
            type: "kubernetes:core/v1:Service",
            props: { metadata: { name: "fastapi" }, spec: { type: "LoadBalancer" } },
        };
        expect(await validate(noLoadBalancer, svc)).toEqual([
            expect.stringContaining("Service fastapi is of type LoadBalancer"),
        ]);
        expect(await validate(noLoadBalancer, svc, { allowLoadBalancer: true })).toEqual([]);
        const clusterIp = { ...svc, props: { spec: { type: "ClusterIP" } } };
        expect(await validate(noLoadBalancer, clusterIp)).toEqual([]);
    });

    test("gpu-pods-tolerate-gpu-taint: a GPU request without the toleration is reported; Exists or Equal tolerations pass", async () => {
        const gpu = (tolerations?: unknown[]) =>
            deployment((p, c) => {
                c.resources.limits["nvidia.com/gpu"] = "1";
                if (tolerations) p.tolerations = tolerations;
            });
        expect(await validate(gpuTolerations, gpu())).toEqual([
            "container app requests nvidia.com/gpu but the pod does not tolerate the 'nvidia.com/gpu:NoSchedule' taint.",
        ]);
        expect(
            await validate(gpuTolerations, gpu([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoExecute" }])),
        ).toHaveLength(1);
        expect(
            await validate(gpuTolerations, gpu([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }])),
        ).toEqual([]);
        expect(
            await validate(gpuTolerations, gpu([{ key: "nvidia.com/gpu", operator: "Equal", value: "present" }])),
        ).toEqual([]);
    });

    test("helm-chart-version-pinned: a release without a version is reported", async () => {
        const release = { type: "kubernetes:helm.sh/v3:Release", name: "fx-redis", props: { chart: "redis" } };
        expect(await validate(helmPinned, release)).toEqual([
            "Helm release fx-redis (chart redis) has no chart version.",
        ]);
        expect(await validate(helmPinned, { ...release, props: { chart: "redis", version: "2.4.4" } })).toEqual([]);
    });

    test("data-volumes-retained: an unprotected PVC or data release is reported outside dev, accepted on dev", async () => {
        const pvc = { type: "kubernetes:core/v1:PersistentVolumeClaim", name: "mlflow-artifacts", props: {} };
        expect(await validate(dataRetained, pvc, { required: true })).toEqual([
            "PersistentVolumeClaim mlflow-artifacts holds data but is not protected: set { protect: true } outside dev.",
        ]);
        expect(await validate(dataRetained, { ...pvc, opts: { protect: true } }, { required: true })).toEqual([]);
        expect(await validate(dataRetained, pvc, { required: false })).toEqual([]);
        const pg = {
            type: "kubernetes:helm.sh/v3:Release",
            name: "fx-postgres",
            props: { chart: "cluster", version: "0.8.1" },
        };
        expect(await validate(dataRetained, pg, { required: true })).toEqual([
            expect.stringContaining("chart cluster"),
        ]);
        const grafana = { ...pg, props: { chart: "grafana", version: "12.11.1" } };
        expect(await validate(dataRetained, grafana, { required: true })).toEqual([]);
    });

    /** One bad example per policy name, written out here: a policy added to the pack without one fails below. */
    const BAD_EXAMPLE: Record<string, { resource: Parameters<typeof validate>[1]; config?: Record<string, unknown> }> =
        {
            "no-latest-or-untagged-image": { resource: deployment((_p, c) => (c.image = "redis:latest")) },
            "images-from-allowed-registries": {
                resource: deployment((_p, c) => (c.image = "redis:7.4.6")),
                config: { registry: "localhost:5001", allowList: [] },
            },
            "requests-and-limits": { resource: deployment((_p, c) => (c.resources = {})) },
            "probes-on-long-running-containers": { resource: deployment((_p, c) => delete c.livenessProbe) },
            "pod-security-restricted": { resource: deployment((p) => (p.hostNetwork = true)) },
            "no-secret-literal-in-env": {
                resource: deployment((_p, c) => c.env.push({ name: "HF_TOKEN", value: "hf_abc" })),
            },
            "no-loadbalancer-service": {
                resource: { type: "kubernetes:core/v1:Service", props: { spec: { type: "LoadBalancer" } } },
            },
            "gpu-pods-tolerate-gpu-taint": {
                resource: deployment((_p, c) => (c.resources.limits["nvidia.com/gpu"] = "1")),
            },
            "helm-chart-version-pinned": {
                resource: { type: "kubernetes:helm.sh/v3:Release", props: { chart: "redis" } },
            },
            "data-volumes-retained": {
                resource: { type: "kubernetes:core/v1:PersistentVolumeClaim", props: {} },
                config: { required: true },
            },
        };

    test.each(policies.map((p) => [p.name, p] as const))("%s refuses its bad example", async (name, policy) => {
        const bad = BAD_EXAMPLE[name];
        expect(bad).toBeDefined();
        expect(await validate(policy, bad.resource, bad.config)).toHaveLength(1);
    });
});
