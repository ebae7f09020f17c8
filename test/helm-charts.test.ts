/**
 * Every Helm release of both stacks, rendered by the real `helm template` from the pinned chart archives with exactly
 * the values the program passes, checked from the inside (test/chart-checks.ts): values the chart never reads, objects
 * the API server would refuse or prune, pods their namespace's Pod Security level refuses, references to Secrets,
 * ConfigMaps and Services nothing creates. The planted faults below show each check catches its kind of mistake.
 */
import { runStack, StackName } from "../tools/harness";
import { HelmRelease, K8sObject, render, Rendered } from "../tools/render-lib";
import { ChartRender, HelmRenderError, helmTemplate, renderCharts, STACK_API_VERSIONS } from "../tools/helm-render";
import { ChartProblem, checkCharts, formatChartProblems } from "./chart-checks";
import { formatProblems, objectId, podSpecs, schemaModule, validateObjects } from "../tools/manifest-validation";

const STACKS: StackName[] = ["dev", "gpu"];

const stacks = new Map<StackName, { rendered: Rendered; charts: ChartRender[]; problems: ChartProblem[] }>();

async function stack(name: StackName) {
    let s = stacks.get(name);
    if (!s) {
        const rendered = render(await runStack(name));
        const charts = renderCharts(rendered);
        s = { rendered, charts, problems: checkCharts(rendered, charts) };
        stacks.set(name, s);
    }
    return s;
}

const ofRule = (problems: readonly ChartProblem[], ...rules: string[]) =>
    formatChartProblems(problems.filter((p) => rules.includes(p.rule)));

function find(charts: readonly ChartRender[], release: string, kind: string, name?: string | RegExp): K8sObject {
    const c = charts.find((x) => x.release === release);
    if (!c) throw new Error(`no release ${release}; releases: ${charts.map((x) => x.release).join(", ")}`);
    const hits = c.objects.filter(
        (o) =>
            o.kind === kind &&
            (name === undefined || (typeof name === "string" ? o.metadata.name === name : name.test(o.metadata.name))),
    );
    if (hits.length !== 1) {
        const names = c.objects.filter((o) => o.kind === kind).map((o) => o.metadata.name);
        throw new Error(`expected one ${kind} ${name ?? ""} in ${release}, found ${hits.length}: ${names.join(", ")}`);
    }
    return hits[0];
}

const podSpec = (o: K8sObject) => o.spec.template.spec;

describe.each(STACKS)("%s stack: every Helm release rendered by helm template and checked", (name) => {
    const releases: Record<StackName, string[]> = {
        dev: ["cnpg", "statsd-exporter", "cert-manager", "fx-redis", "fx-postgres", "prometheus", "grafana"],
        gpu: [
            "cnpg",
            "statsd-exporter",
            "cert-manager",
            "nvidia-device-plugin",
            "barman-cloud",
            "fx-redis",
            "fx-postgres",
            "prometheus",
            "grafana",
        ],
    };

    test("every release renders at its pinned version in its namespace, values.schema.json included", async () => {
        const { charts } = await stack(name);
        expect(charts.map((c) => c.release)).toEqual(releases[name]);
        for (const c of charts)
            expect({ release: c.release, objects: c.objects.length > 0 }).toEqual({
                release: c.release,
                objects: true,
            });
    });

    test("0 values the charts never read", async () => {
        expect(ofRule((await stack(name)).problems, "unused-value")).toBe("");
    });

    test("0 rendered objects the API server would refuse or prune (custom resources against the charts' CRDs)", async () => {
        const { problems } = await stack(name);
        expect(
            formatChartProblems(
                problems.filter((p) => !["unused-value", "pod-security", "reference"].includes(p.rule)),
            ),
        ).toBe("");
    });

    test("0 problems in the program's own objects: Kubernetes' schema, unknown fields, names, and the charts' CRDs", async () => {
        const { rendered, charts } = await stack(name);
        const objects = rendered.objects.filter((o) => !o.patch).map((o) => o.object);
        // The program's own custom resources (its ClusterIssuers) are among them.
        const custom = objects.filter((o) => !schemaModule(o.apiVersion, o.kind)).map((o) => o.kind);
        expect(custom).toContain("ClusterIssuer");
        expect(
            formatProblems(
                validateObjects(
                    objects,
                    charts.flatMap((c) => c.crds),
                ),
            ),
        ).toBe("");
    });

    test("the checks see every pod the charts run, and each runs an exactly versioned image", async () => {
        const { charts } = await stack(name);
        const workloads = charts.flatMap((c) => c.objects.filter((o) => podSpecs(o).length > 0).map(objectId));
        const common = [
            "Deployment/cert-manager/cert-manager-cainjector",
            "Deployment/cert-manager/cert-manager",
            "Deployment/cert-manager/cert-manager-webhook",
            "Job/cert-manager/cert-manager-startupapicheck",
            "Deployment/cnpg-system/cnpg-cloudnative-pg",
            "Deployment/fx-ml-monitoring/statsd-exporter",
            "Deployment/fx-ml/fx-redis",
            "Deployment/fx-ml-monitoring/kube-state-metrics",
            "Deployment/fx-ml-monitoring/prometheus-server",
            "StatefulSet/fx-ml-monitoring/prometheus-alertmanager",
            "Deployment/fx-ml-monitoring/grafana",
        ];
        const gpuOnly = [
            "Deployment/cnpg-system/barman-cloud",
            "DaemonSet/nvidia-device-plugin/nvidia-device-plugin-node-feature-discovery-worker",
            "DaemonSet/nvidia-device-plugin/nvidia-device-plugin",
            "DaemonSet/nvidia-device-plugin/nvidia-device-plugin-mps-control-daemon",
            "Deployment/nvidia-device-plugin/nvidia-device-plugin-node-feature-discovery-master",
            "Deployment/nvidia-device-plugin/nvidia-device-plugin-node-feature-discovery-gc",
            "Job/nvidia-device-plugin/nvidia-device-plugin-node-feature-discovery-prune",
        ];
        expect(workloads.sort()).toEqual([...common, ...(name === "gpu" ? gpuOnly : [])].sort());
        // A tag with at least major.minor (Postgres versions have two parts), never a bare major or `latest`.
        const images = charts.flatMap((c) =>
            c.objects.flatMap((o) =>
                podSpecs(o).flatMap(({ spec }) =>
                    [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map((x: any) => String(x.image)),
                ),
            ),
        );
        images.push(find(charts, "fx-postgres", "Cluster").spec.imageName);
        expect(images.filter((i) => !/:v?\d+\.\d+[^:/]*$/.test(i))).toEqual([]);
        expect(images.length).toBeGreaterThan(workloads.length);
    });

    test("0 pods refused by the Pod Security level of their namespace", async () => {
        expect(ofRule((await stack(name)).problems, "pod-security")).toBe("");
    });

    test("0 references to a Secret (or key), ConfigMap, ServiceAccount or Service nothing creates", async () => {
        expect(ofRule((await stack(name)).problems, "reference")).toBe("");
    });

    test("CRDs are told apart (installed before custom resources): cert-manager's and CloudNativePG's", async () => {
        const { charts } = await stack(name);
        const crds = (release: string) => charts.find((c) => c.release === release)!.crds.map((o) => o.metadata.name);
        expect(crds("cert-manager")).toEqual(
            expect.arrayContaining(["certificates.cert-manager.io", "clusterissuers.cert-manager.io"]),
        );
        expect(crds("cnpg")).toEqual(
            expect.arrayContaining(["clusters.postgresql.cnpg.io", "databases.postgresql.cnpg.io"]),
        );
        for (const c of charts) for (const o of c.crds) expect(o.kind).toBe("CustomResourceDefinition");
    });

    test("the API versions helm renders with are the ones the stack's CRDs serve, and monitoring.coreos.com is not", async () => {
        const { charts } = await stack(name);
        const served = charts.flatMap((c) =>
            c.crds.flatMap((crd) =>
                crd.spec.versions.filter((v: any) => v.served).map((v: any) => `${crd.spec.group}/${v.name}`),
            ),
        );
        expect(served).toEqual(expect.arrayContaining([...STACK_API_VERSIONS]));
        expect(served.filter((v) => v.startsWith("monitoring.coreos.com/"))).toEqual([]);
    });

    test("Prometheus's ClusterRole grants nodes/metrics (what a kubelet authorizes its /metrics by), never nodes/proxy", async () => {
        const { charts } = await stack(name);
        const role = find(charts, "prometheus", "ClusterRole", "prometheus-server");
        const resources = (role.rules as any[]).flatMap((r) => r.resources ?? []);
        expect(resources).toEqual(expect.arrayContaining(["nodes", "nodes/metrics"]));
        expect(resources).not.toContain("nodes/proxy");
        expect(resources.filter((r) => r.includes("/")).sort()).toEqual(["ingresses/status", "nodes/metrics"]);
    });

    test("Postgres runs an exact image, and the alertmanager container drops ALL and cannot escalate", async () => {
        const { charts } = await stack(name);
        const cluster = find(charts, "fx-postgres", "Cluster");
        expect(cluster.spec.imageName).toBe("ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie");
        const am = find(charts, "prometheus", "StatefulSet", /alertmanager/);
        const container = podSpec(am).containers.find((c: any) => c.name === "alertmanager");
        expect(container.securityContext).toMatchObject({
            allowPrivilegeEscalation: false,
            capabilities: { drop: ["ALL"] },
        });
        expect(podSpec(am).securityContext).toMatchObject({
            runAsNonRoot: true,
            seccompProfile: { type: "RuntimeDefault" },
        });
    });
});

describe("gpu stack: the device plugin and FinGPT find a fresh GPU pool without hand labels", () => {
    const NFD_LABEL = "feature.node.kubernetes.io/pci-10de.present";

    test("node-feature-discovery runs, its worker tolerates the pool's taint, and the plugin selects the label it sets", async () => {
        const { charts, rendered } = await stack("gpu");
        const worker = find(charts, "nvidia-device-plugin", "DaemonSet", /node-feature-discovery-worker/);
        expect(podSpec(worker).tolerations).toContainEqual({
            key: "nvidia.com/gpu",
            operator: "Exists",
            effect: "NoSchedule",
        });
        find(charts, "nvidia-device-plugin", "Deployment", /node-feature-discovery-master/);
        const plugin = find(charts, "nvidia-device-plugin", "DaemonSet", "nvidia-device-plugin");
        expect(
            podSpec(plugin).affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms,
        ).toEqual([{ matchExpressions: [{ key: NFD_LABEL, operator: "In", values: ["true"] }] }]);
        const fingpt = rendered.objects.find(
            (o) => o.object.kind === "Deployment" && /fingpt/.test(o.object.metadata.name),
        )!;
        expect(fingpt.object.spec.template.spec.nodeSelector).toEqual({ [NFD_LABEL]: "true" });
    });
});

describe("gpu stack: Postgres backups and the restore path, as the charts render them", () => {
    const PLUGIN = "barman-cloud.cloudnative-pg.io";

    test("the Cluster archives WAL through the plugin to an ObjectStore that reads the keys from the stack's Secret", async () => {
        const { charts } = await stack("gpu");
        const cluster = find(charts, "fx-postgres", "Cluster");
        expect(cluster.spec.plugins).toEqual([
            {
                name: PLUGIN,
                enabled: true,
                isWALArchiver: true,
                parameters: { serverName: "fx-postgres", barmanObjectName: "fx-postgres-backups" },
            },
        ]);
        expect(cluster.spec.affinity).toMatchObject({
            podAntiAffinityType: "required",
            topologyKey: "kubernetes.io/hostname",
        });
        const store = find(charts, "fx-postgres", "ObjectStore", "fx-postgres-backups");
        expect(store.apiVersion).toBe("barmancloud.cnpg.io/v1");
        expect(store.spec.retentionPolicy).toBe("30d");
        expect(store.spec.configuration).toMatchObject({
            destinationPath: "s3://example-org-fx-ml-backups/gpu",
            endpointURL: "https://s3.eu-west-1.amazonaws.com",
            s3Credentials: {
                accessKeyId: { name: "postgres-backup-s3", key: "ACCESS_KEY_ID" },
                secretAccessKey: { name: "postgres-backup-s3", key: "ACCESS_SECRET_KEY" },
            },
            wal: { compression: "gzip" },
            data: { compression: "gzip" },
        });
        const scheduled = find(charts, "fx-postgres", "ScheduledBackup");
        expect(scheduled.spec).toMatchObject({
            schedule: "0 0 2 * * *",
            method: "plugin",
            pluginConfiguration: { name: PLUGIN },
            cluster: { name: "fx-postgres" },
        });
        // The chart creates no credentials Secret of its own: the only one is the program's.
        const c = charts.find((x) => x.release === "fx-postgres")!;
        expect(c.objects.filter((o) => o.kind === "Secret")).toEqual([]);
        const crds = charts.find((x) => x.release === "barman-cloud")!.crds.map((o) => o.metadata.name);
        expect(crds).toEqual(["objectstores.barmancloud.cnpg.io"]);
    });

    test("a recovery (postgresRecoverFrom, to a point in time) renders a Cluster bootstrapped from the plugin, and passes every check", async () => {
        const rendered = render(
            await runStack("gpu", {
                config: {
                    postgresRecoverFrom: "fx-postgres",
                    backupServerName: "fx-postgres-2",
                    postgresRecoveryTarget: "2026-11-30T14:05:00Z",
                },
            }),
        );
        const charts = renderCharts(rendered);
        expect(formatChartProblems(checkCharts(rendered, charts))).toBe("");
        const cluster = find(charts, "fx-postgres", "Cluster");
        expect(cluster.spec.bootstrap).toEqual({
            recovery: {
                source: "pluginRecoveryCluster",
                database: "airflow",
                owner: "airflow",
                recoveryTarget: { targetTime: "2026-11-30T14:05:00Z" },
            },
        });
        expect(cluster.spec.externalClusters).toEqual([
            {
                name: "pluginRecoveryCluster",
                plugin: {
                    name: PLUGIN,
                    parameters: { barmanObjectName: "fx-postgres-recovery", serverName: "fx-postgres" },
                },
            },
        ]);
        expect(cluster.spec.plugins[0].parameters.serverName).toBe("fx-postgres-2");
        const store = find(charts, "fx-postgres", "ObjectStore", "fx-postgres-recovery");
        expect(store.spec.configuration.destinationPath).toBe("s3://example-org-fx-ml-backups/gpu");
        expect(store.spec.configuration.s3Credentials.accessKeyId.name).toBe("postgres-backup-s3");
    });
});

describe("gpu with the Celery workers autoscaled: the KEDA release is checked like every other", () => {
    test("KEDA renders in its namespace with 0 unused values, 0 refused objects or pods, 0 dangling references", async () => {
        const rendered = render(
            await runStack("gpu", { config: { airflowWorkerAutoscaling: true, airflowWorkerReplicas: 2 } }),
        );
        const charts = renderCharts(rendered);
        expect(formatChartProblems(checkCharts(rendered, charts))).toBe("");
        const keda = charts.find((c) => c.release === "keda")!;
        expect(keda.namespace).toBe("keda");
        expect(keda.crds.map((o) => o.metadata.name)).toEqual(
            expect.arrayContaining(["scaledobjects.keda.sh", "triggerauthentications.keda.sh"]),
        );
        const pods = keda.objects.filter((o) => podSpecs(o).length > 0).map(objectId);
        expect(pods.sort()).toEqual([
            "Deployment/keda/keda-admission-webhooks",
            "Deployment/keda/keda-operator",
            "Deployment/keda/keda-operator-metrics-apiserver",
        ]);
    });
});

// ---------------------------------------------------------------------------------------------------------------
// Planted faults: one release of a stack re-rendered with one mistake; the checks must name it.
// ---------------------------------------------------------------------------------------------------------------

async function planted(stackName: StackName, release: string, mutate: (values: Record<string, any>) => void) {
    const { rendered, charts } = await stack(stackName);
    const original = rendered.releases.find((r) => r.name === release)!;
    const values = structuredClone(original.values);
    mutate(values);
    const changed: HelmRelease = { ...original, values };
    const chart = helmTemplate(changed);
    const others = charts.filter((c) => c.release !== release);
    const problems = checkCharts(
        { ...rendered, releases: rendered.releases.map((r) => (r === original ? changed : r)) },
        [...others, chart],
        [release],
    );
    return problems;
}

describe("planted faults are caught", () => {
    test("a misspelled key (grafana admin.existingSecrett) is a value the chart never reads", async () => {
        const problems = await planted("dev", "grafana", (v) => (v.admin.existingSecrett = v.admin.existingSecret));
        expect(problems).toContainEqual(
            expect.objectContaining({
                rule: "unused-value",
                message: expect.stringMatching(/^admin\.existingSecrett: chart grafana 12\.11\.1 never reads it/),
            }),
        );
    });

    test("a block under the wrong key (securityContext inside prometheus server.persistentVolume) is never read", async () => {
        const problems = await planted("dev", "prometheus", (v) => {
            v.server.persistentVolume.containerSecurityContext = v.server.containerSecurityContext;
        });
        expect(problems).toEqual([
            expect.objectContaining({
                rule: "unused-value",
                message: expect.stringMatching(/^server\.persistentVolume\.containerSecurityContext: /),
            }),
        ]);
    });

    test("a pod without a security context is refused by the restricted namespace", async () => {
        const problems = await planted("dev", "statsd-exporter", (v) => {
            v.podSecurityContext = null;
            v.securityContext = null;
        });
        expect(problems).toEqual([
            expect.objectContaining({
                rule: "pod-security",
                object: "Deployment/fx-ml-monitoring/statsd-exporter",
                message: expect.stringMatching(
                    /namespace enforces restricted; refused: allowPrivilegeEscalation != false.*runAsNonRoot != true.*seccompProfile/,
                ),
            }),
        ]);
    });

    test("the defect this check found stays found: alertmanager security contexts under the prometheus chart's key names", async () => {
        const problems = await planted("dev", "prometheus", (v) => {
            const am = v.alertmanager;
            am.containerSecurityContext = am.securityContext;
            am.securityContext = am.podSecurityContext;
            delete am.podSecurityContext;
        });
        const found = problems.map((p) => `${p.object} [${p.rule}] ${p.message}`);
        expect(found).toEqual(
            expect.arrayContaining([
                expect.stringMatching(/^values \[unused-value\] alertmanager\.containerSecurityContext: /),
                // The pod-level fields land in the container's securityContext, where the API server has no fsGroup.
                expect.stringMatching(
                    /^StatefulSet\/fx-ml-monitoring\/prometheus-alertmanager \[unknown-field\] .*fsGroup/,
                ),
                expect.stringMatching(
                    /^StatefulSet\/fx-ml-monitoring\/prometheus-alertmanager \[pod-security\] namespace enforces restricted; refused: allowPrivilegeEscalation != false.*unrestricted capabilities/,
                ),
            ]),
        );
    });

    test("a dangling Secret reference, and a key the Secret does not have", async () => {
        const missing = await planted("dev", "grafana", (v) => (v.admin.existingSecret = "grafana-admn"));
        expect(missing).toContainEqual(
            expect.objectContaining({
                rule: "reference",
                message: expect.stringMatching(
                    /names Secret fx-ml-monitoring\/grafana-admn, which neither the program nor a chart of the stack creates/,
                ),
            }),
        );
        const key = await planted("dev", "grafana", (v) => (v.admin.passwordKey = "password"));
        expect(key).toContainEqual(
            expect.objectContaining({
                rule: "reference",
                message: expect.stringMatching(
                    /key password; it has admin-password, admin-user \(created by the program\)/,
                ),
            }),
        );
    });

    test("a Service host name in configuration that no Service answers (Grafana's datasource URL)", async () => {
        const problems = await planted("dev", "grafana", (v) => {
            v.datasources["datasources.yaml"].datasources[0].url =
                "http://prometheus-srv.fx-ml-monitoring.svc.cluster.local";
        });
        expect(problems).toEqual([
            expect.objectContaining({
                rule: "reference",
                object: "ConfigMap/fx-ml-monitoring/grafana",
                message: expect.stringMatching(/names Service fx-ml-monitoring\/prometheus-srv, which neither/),
            }),
        ]);
    });

    test("a field the API server would drop, passed through a block the chart copies whole (redis securityContext)", async () => {
        const problems = await planted("dev", "fx-redis", (v) => (v.securityContext.runAsUsr = 999));
        expect(problems).toContainEqual(
            expect.objectContaining({
                rule: "unknown-field",
                message: expect.stringMatching(/'"runAsUsr"' does not exist/),
            }),
        );
    });

    test("a custom resource field outside its CRD's schema (CloudNativePG Cluster)", async () => {
        const problems = await planted("dev", "fx-postgres", (v) => (v.cluster.primaryUpdateMethod = "swap"));
        expect(problems.map((p) => `${p.object} [${p.rule}]`)).toContain("Cluster/fx-ml/fx-postgres [schema]");
    });

    test("an ObjectStore outside the plugin's CRD schema, and one whose credentials Secret does not exist", async () => {
        const retention = await planted("gpu", "fx-postgres", (v) => (v.backups.retentionPolicy = "30 days"));
        expect(retention.map((p) => `${p.object} [${p.rule}]`)).toContain(
            "ObjectStore/fx-ml/fx-postgres-backups [schema]",
        );
        const secret = await planted("gpu", "fx-postgres", (v) => (v.backups.secret.name = "postgres-backup-s4"));
        expect(secret).toContainEqual(
            expect.objectContaining({
                rule: "reference",
                message: expect.stringMatching(/postgres-backup-s4/),
            }),
        );
    });

    test("a value the chart's values.schema.json refuses fails the render with helm's message", async () => {
        const { rendered } = await stack("dev");
        const release = rendered.releases.find((r) => r.name === "fx-postgres")!;
        const bad = {
            ...release,
            values: { ...release.values, cluster: { ...release.values.cluster, instances: "two" } },
        };
        expect(() => helmTemplate(bad)).toThrow(HelmRenderError);
        expect(() => helmTemplate(bad)).toThrow(/fx-postgres.*\/cluster\/instances': got string, want integer/s);
    });
});
