import { runStack, StackRun } from "../tools/harness";
import { runWithOptions } from "./resource-options";

const RELEASE = "kubernetes:helm.sh/v3:Release";

describe.each(["dev", "gpu"] as const)("postgres on the %s stack", (stack) => {
    let run: StackRun;
    let retained: Map<string, boolean>;
    let protectedRes: Map<string, boolean>;
    beforeAll(async () => {
        ({ run, retained, protectedRes } = await runWithOptions(stack));
    });
    const cluster = () => run.one(RELEASE, "fx-cluster");
    const operator = () => run.one(RELEASE, "fx-cnpg");

    test("the CloudNativePG operator and cluster charts are the pinned ones, not Bitnami", () => {
        for (const [release, chart, version] of [
            [operator(), "cloudnative-pg", "0.29.0"],
            [cluster(), "cluster", "0.8.1"],
        ] as const) {
            expect(release.inputs.chart).toBe(chart);
            expect(release.inputs.version).toBe(version);
            expect(release.inputs.repositoryOpts.repo).toBe("https://cloudnative-pg.github.io/charts");
        }
        expect(operator().inputs.namespace).toBe("cnpg-system");
        expect(cluster().inputs.namespace).toBe("fx-ml");
        // Release name and fullname give the contract's Service fx-postgres-rw.
        expect(cluster().inputs.name).toBe("fx-postgres");
        expect(cluster().inputs.values.fullnameOverride).toBe("fx-postgres");
        expect(run.outputs.postgresHost.value).toBe("fx-postgres-rw.fx-ml.svc.cluster.local");
        expect(run.outputs.postgresPort.value).toBe(5432);
    });

    test("the operator is installed before the cluster (its CRDs and webhook must exist first)", () => {
        expect(run.dependsOn(cluster(), operator())).toBe(true);
        expect(run.dependsOn(operator(), cluster())).toBe(false);
        expect(operator().inputs.values.crds.create).toBe(true);
    });

    test("the cluster waits for a Job that sees the operator's webhook take connections through its Service", () => {
        const job = run.one("kubernetes:batch/v1:Job", "cnpg-webhook-ready");
        expect(job.inputs.metadata.namespace).toBe("cnpg-system");
        expect(run.dependsOn(job, operator())).toBe(true);
        expect(run.dependsOn(cluster(), job)).toBe(true);
        const pod = job.inputs.spec.template.spec;
        const c = pod.containers[0];
        expect(c.image).toBe("ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie");
        expect(c.command.slice(0, 2)).toEqual(["bash", "-c"]);
        expect(c.command[2]).toContain("/dev/tcp/cnpg-webhook-service.cnpg-system.svc/443");
        expect(c.command[2]).toContain('if [ "$ok" -ge 3 ]');
        expect(job.inputs.spec.backoffLimit).toBe(0);
        // A third party's image by tag: the documented exception to checkov's digest and pull-policy checks.
        const reason = "the Postgres image the Cluster runs, by the exact tag the operator is given";
        expect(job.inputs.metadata.annotations).toEqual({
            "checkov.io/skip1": `CKV_K8S_43=${reason}`,
            "checkov.io/skip2": `CKV_K8S_15=${reason}`,
        });
        expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 26, runAsGroup: 26 });
        expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
        expect(c.resources).toEqual({
            requests: { cpu: "10m", memory: "32Mi" },
            limits: { cpu: "100m", memory: "32Mi" },
        });
    });

    test("airflow, mlflow and feast each get a database owned by a login role with its own Secret", () => {
        const v = cluster().inputs.values;
        const roleSecret = (role: string) => {
            const s = run.one("kubernetes:core/v1:Secret", `fx-pg-${role}`);
            expect(s.inputs.type).toBe("kubernetes.io/basic-auth");
            return s.inputs.metadata.name;
        };
        expect(v.databases.map((d: any) => [d.name, d.owner])).toEqual([
            ["airflow", "airflow"],
            ["mlflow", "mlflow"],
            ["feast", "feast"],
        ]);
        for (const role of ["airflow", "mlflow", "feast"]) {
            const r = v.cluster.roles.find((x: any) => x.name === role);
            expect(r).toMatchObject({ login: true, superuser: false, ensure: "present" });
            expect(r.passwordSecret).toEqual({ name: roleSecret(role) });
        }
        // initdb creates airflow with its owner instead of CloudNativePG's default `app` database.
        expect(v.cluster.initdb).toEqual({ database: "airflow", owner: "airflow", secret: { name: "pg-airflow" } });
        expect(v.cluster.enableSuperuserAccess).toBe(false);
    });

    test("instances, storage and the Postgres major version come from stack config", () => {
        const v = cluster().inputs.values;
        const expected = {
            dev: { instances: 1, storageClass: "", pdb: false, services: { disabledDefaultServices: ["ro"] } },
            gpu: { instances: 2, storageClass: "standard-rwo", pdb: true, services: undefined },
        }[stack];
        expect(v.cluster.instances).toBe(expected.instances);
        expect(v.cluster.storage).toEqual({ size: run.config.postgresStorage, storageClass: expected.storageClass });
        expect(v.version.postgresql).toBe(run.config.postgresVersion);
        // An exact image, never the chart's floating `postgresql:<major>` tag.
        expect(v.cluster.imageName).toBe("ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie");
        expect(v.cluster.enablePDB).toBe(expected.pdb);
        // One instance has no replica for a read-only Service to select.
        expect(v.cluster.services).toEqual(expected.services);
    });

    test("the exporter is on without Prometheus Operator objects, and every container has requests and limits", () => {
        const v = cluster().inputs.values;
        expect(v.cluster.monitoring).toMatchObject({
            enabled: true,
            podMonitor: { enabled: false },
            prometheusRule: { enabled: false },
        });
        expect(operator().inputs.values.monitoring.podMonitorEnabled).toBe(false);
        for (const res of [v.cluster.resources, operator().inputs.values.resources]) {
            expect(Object.keys(res.requests).sort()).toEqual(["cpu", "memory"]);
            expect(Object.keys(res.limits).sort()).toEqual(["cpu", "memory"]);
            expect(res.limits.memory).toBe(res.requests.memory);
        }
        // Each instance's size comes from stack config (the dev stack is sized for a laptop).
        expect(v.cluster.resources).toEqual({
            requests: { cpu: run.config.postgresCpuRequest, memory: run.config.postgresMemory },
            limits: { cpu: run.config.postgresCpuLimit, memory: run.config.postgresMemory },
        });
        expect(v.cluster.securityContext).toMatchObject({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ["ALL"] },
        });
    });

    test("the cluster (and so its volumes) is protected and kept on destroy on every stack but dev", () => {
        expect(protectedRes.get(`${RELEASE}::fx-cluster`)).toBe(stack !== "dev");
        expect(retained.get(`${RELEASE}::fx-cluster`)).toBe(stack !== "dev");
        // The operator may go: its CRDs are kept by Helm and the next `pulumi up` reinstalls it.
        expect(retained.get(`${RELEASE}::fx-cnpg`)).toBe(false);
        expect(protectedRes.get(`${RELEASE}::fx-cnpg`)).toBe(false);
    });
});

/** The charts from their public repositories; call it inside a `program`, which loads its own modules. */
const publicCharts = () => {
    const { HelmCharts } = require("../lib/chart-values");
    return new HelmCharts({ kind: "public" });
};

/** Postgres component args for the tests that build it alone (with `charts`, made inside the program). */
const PG_ARGS = {
    namespace: "fx-ml",
    monitoringNamespace: "fx-ml-monitoring",
    roleSecrets: { airflow: "a", mlflow: "m", feast: "f" },
    instances: 1,
    version: "17",
    storage: { size: "1Gi" },
    resources: { cpuRequest: "100m", cpuLimit: "1", memory: "512Mi" },
    retainOnDelete: false,
};

describe("postgres scrape job", () => {
    test("keeps only the fx-postgres instances' exporter port", async () => {
        const run = await runStack("dev", {
            program: () => {
                const { Postgres } = require("../components/data/postgres");
                const pg = new Postgres("t", { ...PG_ARGS, charts: publicCharts(), version: "16" });
                return { job: pg.scrapeJob };
            },
        });
        const job = run.outputs.job.value as any;
        expect(job.kubernetes_sd_configs).toEqual([{ role: "pod", namespaces: { names: ["fx-ml"] } }]);
        expect(job.relabel_configs[0]).toEqual({
            source_labels: [
                "__meta_kubernetes_pod_label_cnpg_io_cluster",
                "__meta_kubernetes_pod_container_port_number",
            ],
            regex: "fx-postgres;9187",
            action: "keep",
        });
    });
});

describe("Postgres backups through the Barman Cloud plugin", () => {
    const SECRET_WRAPPER = "4dabf18193072939515e22adb298388d";

    test("dev (backups off by default): no plugin, no backup Secret, backups disabled in the cluster chart", async () => {
        const run = await runStack("dev");
        expect(run.ofType(RELEASE, "fx-barman-cloud")).toEqual([]);
        expect(run.ofType("kubernetes:core/v1:Secret", "fx-postgres-backup-s3")).toEqual([]);
        const v = run.one(RELEASE, "fx-cluster").inputs.values;
        expect(v.backups).toEqual({ enabled: false });
        expect(v.cluster.plugins).toBeUndefined();
        expect(v.mode).toBe("standalone");
    });

    describe("gpu (backups required by its stack file)", () => {
        let run: StackRun;
        beforeAll(async () => {
            run = await runStack("gpu");
        });

        test("the pinned plugin chart goes to the operator's namespace after the operator and cert-manager, before the cluster", () => {
            const plugin = run.one(RELEASE, "fx-barman-cloud");
            expect(plugin.inputs).toMatchObject({
                name: "barman-cloud",
                namespace: "cnpg-system",
                chart: "plugin-barman-cloud",
                version: "0.7.0",
                repositoryOpts: { repo: "https://cloudnative-pg.github.io/charts" },
            });
            const certManager = run.one("kubernetes-cert-manager:index:CertManager", "cert-manager");
            expect(run.dependsOn(plugin, run.one(RELEASE, "fx-cnpg"))).toBe(true);
            expect(run.dependsOn(plugin, certManager)).toBe(true);
            expect(run.dependsOn(run.one(RELEASE, "fx-cluster"), plugin)).toBe(true);
        });

        test("WAL archiving and a scheduled base backup to the configured bucket, keys by Secret reference", () => {
            const v = run.one(RELEASE, "fx-cluster").inputs.values;
            expect(v.cluster.plugins).toEqual([
                { name: "barman-cloud.cloudnative-pg.io", parameters: { serverName: "fx-postgres" } },
            ]);
            expect(v.backups).toMatchObject({
                enabled: true,
                method: "plugin",
                pluginConfiguration: { name: "barman-cloud.cloudnative-pg.io" },
                provider: "s3",
                destinationPath: "s3://example-org-fx-ml-backups/gpu",
                endpointURL: "https://s3.eu-west-1.amazonaws.com",
                secret: { create: false, name: "postgres-backup-s3" },
                retentionPolicy: "30d",
                scheduledBackups: [
                    {
                        name: "scheduled",
                        schedule: "0 0 2 * * *",
                        backupOwnerReference: "self",
                        method: "plugin",
                        pluginConfiguration: { name: "barman-cloud.cloudnative-pg.io" },
                    },
                ],
            });
            // No key literals anywhere in the values: the chart would create a Secret from them.
            expect(JSON.stringify(v.backups)).not.toMatch(/accessKey|secretKey/);
            expect(v.mode).toBe("standalone");
        });

        test("the credentials Secret holds both keys as a Pulumi secret", () => {
            const s = run.one("kubernetes:core/v1:Secret", "fx-postgres-backup-s3");
            expect(s.inputs.metadata.name).toBe("postgres-backup-s3");
            expect(s.inputs.metadata.namespace).toBe("fx-ml");
            expect(s.inputs.stringData[SECRET_WRAPPER]).toBeDefined();
            expect(Object.keys(s.inputs.stringData.value).sort()).toEqual(["ACCESS_KEY_ID", "ACCESS_SECRET_KEY"]);
        });

        test("two instances never share a node, under a PodDisruptionBudget", () => {
            const v = run.one(RELEASE, "fx-cluster").inputs.values;
            expect(v.cluster.instances).toBe(2);
            expect(v.cluster.enablePDB).toBe(true);
            expect(v.cluster.affinity).toEqual({
                enablePodAntiAffinity: true,
                podAntiAffinityType: "required",
                topologyKey: "kubernetes.io/hostname",
            });
        });
    });

    test("a recovery bootstraps from the old serverName (to a point in time) and archives under the new one", async () => {
        const run = await runStack("gpu", {
            config: {
                postgresRecoverFrom: "fx-postgres",
                backupServerName: "fx-postgres-2",
                postgresRecoveryTarget: "2026-11-30T14:05:00Z",
            },
        });
        const v = run.one(RELEASE, "fx-cluster").inputs.values;
        expect(v.mode).toBe("recovery");
        expect(v.recovery).toEqual({
            method: "plugin",
            pluginConfiguration: { name: "barman-cloud.cloudnative-pg.io" },
            clusterName: "fx-postgres",
            pitrTarget: { time: "2026-11-30T14:05:00Z" },
            database: "airflow",
            owner: "airflow",
            provider: "s3",
            destinationPath: "s3://example-org-fx-ml-backups/gpu",
            endpointURL: "https://s3.eu-west-1.amazonaws.com",
            secret: { create: false, name: "postgres-backup-s3" },
        });
        // initdb would be ignored by the chart in recovery mode: the roles and databases lists take over.
        expect(v.cluster.initdb).toBeUndefined();
        expect(v.cluster.plugins[0].parameters.serverName).toBe("fx-postgres-2");
    });
});
