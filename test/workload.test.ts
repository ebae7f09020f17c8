import { runProgram, runStack } from "../tools/harness";

const IMAGE = "localhost:5001/fx-fastapi@sha256:" + "b".repeat(64);
const RES = { cpuRequest: "100m", cpuLimit: "500m", memory: "256Mi" };

function program(extra: Record<string, unknown> = {}) {
    return () => {
        const { Workload } = require("../lib/workload");
        const { httpProbe } = require("../lib/k8s");
        new Workload("demo", {
            namespace: "fx-ml",
            component: "server",
            container: {
                name: "demo",
                image: IMAGE,
                ports: [{ name: "http", containerPort: 8000 }],
                readinessProbe: httpProbe("/health", "http"),
                resources: RES,
            },
            scratch: { tmp: { mountPath: "/tmp" } },
            service: { ports: [{ name: "http", port: 8000, targetPort: "http" }] },
            ...extra,
        });
    };
}

describe("workload helper", () => {
    test("pods meet the restricted profile: non-root, no escalation, no capabilities, seccomp, read-only root", async () => {
        const run = await runProgram(program());
        const pod = run.one("kubernetes:apps/v1:Deployment", "demo").inputs.spec.template.spec;
        expect(pod.securityContext).toEqual({
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
            // Volumes belong to the user's own group (lib/k8s.ts podSecurityContext decides, nothing overrides it).
            fsGroup: 1000,
            seccompProfile: { type: "RuntimeDefault" },
        });
        expect(pod.automountServiceAccountToken).toBe(false);
        const c = pod.containers[0];
        expect(c.securityContext).toEqual({
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ["ALL"] },
            seccompProfile: { type: "RuntimeDefault" },
        });
        expect(c.resources).toEqual({
            requests: { cpu: "100m", memory: "256Mi" },
            limits: { cpu: "500m", memory: "256Mi" },
        });
        // Scratch space for the read-only root filesystem.
        expect(pod.volumes).toContainEqual({ name: "tmp", emptyDir: {} });
        expect(c.volumeMounts).toContainEqual({ name: "tmp", mountPath: "/tmp" });
        expect(c.imagePullPolicy).toBe("IfNotPresent");
    });

    test("the Service selects the workload's pods by the stable selector labels, and carries the recommended labels", async () => {
        const run = await runProgram(program());
        const dep = run.one("kubernetes:apps/v1:Deployment", "demo");
        const svc = run.one("kubernetes:core/v1:Service", "demo");
        expect(svc.inputs.spec.selector).toEqual(dep.inputs.spec.selector.matchLabels);
        expect(dep.inputs.spec.template.metadata.labels).toMatchObject(svc.inputs.spec.selector);
        for (const key of ["name", "instance", "component", "part-of", "managed-by"]) {
            expect(dep.inputs.metadata.labels).toHaveProperty([`app.kubernetes.io/${key}`]);
            expect(svc.inputs.metadata.labels).toHaveProperty([`app.kubernetes.io/${key}`]);
        }
        expect(dep.inputs.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    });

    test("a StatefulSet gets a headless Service of the same name so each pod has a DNS name", async () => {
        const run = await runProgram(program({ kind: "StatefulSet", replicas: 2 }));
        const sts = run.one("kubernetes:apps/v1:StatefulSet", "demo");
        const svc = run.one("kubernetes:core/v1:Service", "demo");
        expect(sts.inputs.spec.serviceName).toBe("demo");
        expect(svc.inputs.spec.clusterIP).toBe("None");
    });

    test("a replicated workload spreads one pod per node (zones preferred) and gets a budget of one disruption", async () => {
        const single = await runProgram(program());
        expect(
            single.one("kubernetes:apps/v1:Deployment", "demo").inputs.spec.template.spec.topologySpreadConstraints,
        ).toBeUndefined();
        expect(single.ofType("kubernetes:policy/v1:PodDisruptionBudget")).toEqual([]);
        // An autoscaler floor of 1 is a single replica too.
        const floorOne = await runProgram(program({ replicas: "autoscaled", minReplicas: 1 }));
        expect(floorOne.ofType("kubernetes:policy/v1:PodDisruptionBudget")).toEqual([]);

        const selector = {
            "app.kubernetes.io/name": "demo",
            "app.kubernetes.io/instance": "fx-ml-pipeline",
        };
        const run = await runProgram(program({ replicas: 3 }));
        const dep = run.one("kubernetes:apps/v1:Deployment", "demo").inputs;
        expect(dep.spec.selector.matchLabels).toEqual(selector);
        expect(dep.spec.template.spec.topologySpreadConstraints).toEqual([
            {
                maxSkew: 1,
                topologyKey: "kubernetes.io/hostname",
                whenUnsatisfiable: "DoNotSchedule",
                labelSelector: { matchLabels: selector },
                matchLabelKeys: ["pod-template-hash"],
            },
            {
                maxSkew: 1,
                topologyKey: "topology.kubernetes.io/zone",
                whenUnsatisfiable: "ScheduleAnyway",
                labelSelector: { matchLabels: selector },
                matchLabelKeys: ["pod-template-hash"],
            },
        ]);
        const pdb = run.one("kubernetes:policy/v1:PodDisruptionBudget", "demo").inputs;
        expect(pdb.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: selector } });
        expect(pdb.metadata.namespace).toBe("fx-ml");

        // A StatefulSet's pods carry no pod-template-hash; an autoscaled floor of 2 counts as replicated.
        const sts = await runProgram(program({ kind: "StatefulSet", replicas: "autoscaled", minReplicas: 2 }));
        const spread = sts.one("kubernetes:apps/v1:StatefulSet", "demo").inputs.spec.template.spec
            .topologySpreadConstraints;
        expect(spread.map((c: any) => [c.topologyKey, c.whenUnsatisfiable, c.matchLabelKeys])).toEqual([
            ["kubernetes.io/hostname", "DoNotSchedule", undefined],
            ["topology.kubernetes.io/zone", "ScheduleAnyway", undefined],
        ]);
        expect(sts.ofType("kubernetes:policy/v1:PodDisruptionBudget")).toHaveLength(1);
        const own = await runProgram(program({ replicas: 2, disruptionBudget: false }));
        expect(own.ofType("kubernetes:policy/v1:PodDisruptionBudget")).toEqual([]);
    });

    test("imagePullSecrets, node selector and tolerations reach the pod only when given", async () => {
        const plain = (await runProgram(program())).one("kubernetes:apps/v1:Deployment", "demo").inputs.spec.template
            .spec;
        expect(plain.imagePullSecrets).toBeUndefined();
        expect(plain.tolerations).toBeUndefined();
        const run = await runProgram(
            program({
                imagePullSecretName: "registry-pull",
                nodeSelector: { pool: "gpu" },
                tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
            }),
        );
        const pod = run.one("kubernetes:apps/v1:Deployment", "demo").inputs.spec.template.spec;
        expect(pod.imagePullSecrets).toEqual([{ name: "registry-pull" }]);
        expect(pod.nodeSelector).toEqual({ pool: "gpu" });
        expect(pod.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);
    });

    test("bad shapes fail with the workload's name: a Job with a Service, a server without probes", async () => {
        await expect(runProgram(program({ kind: "Job" }))).rejects.toThrow(/Workload 'demo': a Job has no Service/);
        const noProbe = () => {
            const { Workload } = require("../lib/workload");
            new Workload("bare", {
                namespace: "fx-ml",
                component: "server",
                container: { name: "bare", image: IMAGE, resources: RES },
            });
        };
        await expect(runProgram(noProbe)).rejects.toThrow(/Workload 'bare': a long-running Deployment needs/);
    });

    test("a writable root filesystem needs a stated reason, which becomes the linters' documented exception", async () => {
        const writable = (reason?: string) => () => {
            const { Workload } = require("../lib/workload");
            const { httpProbe } = require("../lib/k8s");
            new Workload("rw", {
                namespace: "fx-ml",
                component: "server",
                writableRootReason: reason,
                container: {
                    name: "rw",
                    image: IMAGE,
                    readinessProbe: httpProbe("/health", 8000),
                    resources: RES,
                    readOnlyRootFilesystem: false,
                },
            });
        };
        await expect(runProgram(writable())).rejects.toThrow(/Workload 'rw': container\(s\) rw need a writable root/);
        const run = await runProgram(writable("writes its config on start"));
        const dep = run.one("kubernetes:apps/v1:Deployment", "rw");
        expect(dep.inputs.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem).toBe(false);
        expect(dep.inputs.metadata.annotations).toEqual({
            "kube-score/ignore": "container-security-context-readonlyrootfilesystem",
            "checkov.io/skip1": "CKV_K8S_22=writes its config on start",
        });
        // Without the exception, no annotation: the default stays read-only.
        const plain = await runProgram(program());
        expect(plain.one("kubernetes:apps/v1:Deployment", "demo").inputs.metadata.annotations).toBeUndefined();
    });
});

const POD_OWNERS = ["kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet"];
const APP_WORKLOADS = [
    "airflow-scheduler",
    "airflow-webserver",
    "airflow-triggerer",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-migrate",
    "airflow-create-user",
    "feast-apply",
    "mlflow",
    "fastapi",
];

describe.each(["dev", "gpu"] as const)("%s stack: application workloads", (stack) => {
    let run: Awaited<ReturnType<typeof runStack>>;
    beforeAll(async () => {
        run = await runStack(stack);
    });

    test("every Service selects exactly the pods of the one workload it fronts", () => {
        const services = run.ofType("kubernetes:core/v1:Service").filter((s) => s.inputs.spec?.selector);
        expect(services.map((s) => s.name)).toEqual(
            expect.arrayContaining(["mlflow", "fastapi", "airflow-webserver", "airflow-worker"]),
        );
        const pods = run.resources
            .filter((r) => POD_OWNERS.includes(r.type))
            .map((r) => ({
                owner: r,
                ns: r.inputs.metadata?.namespace,
                labels: r.inputs.spec.template.metadata.labels,
            }));
        for (const svc of services) {
            const sel: Record<string, string> = svc.inputs.spec.selector;
            const matched = pods.filter(
                (p) =>
                    p.ns === svc.inputs.metadata.namespace &&
                    Object.entries(sel).every(([k, v]) => p.labels?.[k] === v),
            );
            // Exactly one workload, and it is the one the Service is named after.
            expect([svc.name, matched.map((m) => m.owner.inputs.metadata.name)]).toEqual([
                svc.name,
                [svc.inputs.metadata.name],
            ]);
        }
    });

    test("every application workload runs a digest-pinned image built by the images component", () => {
        const refs = Object.values(run.outputs.imageRefs.value as Record<string, string>);
        for (const name of APP_WORKLOADS) {
            const [w] = run.resources.filter(
                (r) => [...POD_OWNERS, "kubernetes:batch/v1:Job"].includes(r.type) && r.inputs.metadata?.name === name,
            );
            expect([name, w !== undefined]).toEqual([name, true]);
            const pod = w.inputs.spec.template.spec;
            for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
                expect(c.image).toMatch(/@sha256:[0-9a-f]{64}$/);
                expect(refs).toContain(c.image);
            }
        }
    });

    test("every replicated workload spreads over nodes under a disruption budget; a single replica is left alone", () => {
        const hpas = run.ofType("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").map((h) => h.inputs);
        const floor = (w: any) =>
            w.spec.replicas ?? hpas.find((h) => h.spec.scaleTargetRef.name === w.metadata.name)?.spec.minReplicas ?? 1;
        const pdbs = run.ofType("kubernetes:policy/v1:PodDisruptionBudget").map((p) => p.inputs);
        const replicated: string[] = [];
        for (const w of run.resources.filter((r) => POD_OWNERS.includes(r.type)).map((r) => r.inputs)) {
            const spread = w.spec.template.spec.topologySpreadConstraints ?? [];
            if (floor(w) < 2) {
                expect([w.metadata.name, spread]).toEqual([w.metadata.name, []]);
                continue;
            }
            replicated.push(w.metadata.name);
            expect([w.metadata.name, spread[0]]).toEqual([
                w.metadata.name,
                expect.objectContaining({
                    maxSkew: 1,
                    topologyKey: "kubernetes.io/hostname",
                    whenUnsatisfiable: "DoNotSchedule",
                    labelSelector: { matchLabels: w.spec.selector.matchLabels },
                }),
            ]);
            const budget = pdbs.find(
                (p) =>
                    p.metadata.namespace === w.metadata.namespace &&
                    JSON.stringify(p.spec.selector.matchLabels) === JSON.stringify(w.spec.selector.matchLabels),
            );
            expect([w.metadata.name, budget?.spec.maxUnavailable]).toEqual([w.metadata.name, 1]);
        }
        // gpu runs FastAPI from 2 replicas (Postgres's 2 instances: test/postgres.test.ts); dev replicates nothing.
        expect(replicated).toEqual(stack === "gpu" ? ["fastapi"] : []);
    });

    test("imagePullSecrets follow the registry: the pull Secret where the registry has credentials, none on kind", () => {
        const dep = run.one("kubernetes:apps/v1:Deployment", "mlflow").inputs.spec.template.spec;
        if (stack === "gpu") expect(dep.imagePullSecrets).toEqual([{ name: "registry-pull" }]);
        else expect(dep.imagePullSecrets).toBeUndefined();
    });
});

test("gpu with more Airflow workers and webservers: each is spread and budgeted", async () => {
    const run = await runStack("gpu", { config: { airflowWorkerReplicas: 3, airflowWebserverReplicas: 2 } });
    for (const [type, name] of [
        ["kubernetes:apps/v1:StatefulSet", "airflow-worker"],
        ["kubernetes:apps/v1:Deployment", "airflow-webserver"],
    ]) {
        const w = run.one(type, name).inputs;
        expect(w.spec.template.spec.topologySpreadConstraints[0]).toMatchObject({
            topologyKey: "kubernetes.io/hostname",
            whenUnsatisfiable: "DoNotSchedule",
        });
        expect(run.one("kubernetes:policy/v1:PodDisruptionBudget", name).inputs.spec).toEqual({
            maxUnavailable: 1,
            selector: { matchLabels: w.spec.selector.matchLabels },
        });
    }
});
