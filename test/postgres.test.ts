import { runStack, StackRun } from "./harness";
import { runWithOptions } from "./resource-options";
import { CHARTS } from "../components/charts";

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
        for (const [release, ref] of [
            [operator(), CHARTS.cnpgOperator],
            [cluster(), CHARTS.cnpgCluster],
        ] as const) {
            expect(release.inputs.chart).toBe(ref.chart);
            expect(release.inputs.version).toBe(ref.version);
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
            dev: { instances: 1, storageClass: "", pdb: false },
            gpu: { instances: 2, storageClass: "standard-rwo", pdb: true },
        }[stack];
        expect(v.cluster.instances).toBe(expected.instances);
        expect(v.cluster.storage).toEqual({ size: run.config.postgresStorage, storageClass: expected.storageClass });
        expect(v.version.postgresql).toBe(run.config.postgresVersion);
        // An exact image, never the chart's floating `postgresql:<major>` tag.
        expect(v.cluster.imageName).toBe("ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie");
        expect(v.cluster.enablePDB).toBe(expected.pdb);
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

/** Postgres component args for the tests that build it alone. */
const PG_ARGS = {
    charts: { kind: "public" },
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
                const { Postgres } = require("../components/postgres");
                const pg = new Postgres("t", { ...PG_ARGS, version: "16" });
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

    test.each([
        ["instances", { instances: 0 }, /instances must be a whole number of at least 1, got 0/],
        ["version", { version: "17.2" }, /supported major version \(14, 15, 16, 17, 18\), got "17.2"/],
    ])("a bad %s is refused with the value", async (_what, override, message) => {
        await expect(
            runStack("dev", {
                program: () => {
                    const { Postgres } = require("../components/postgres");
                    new Postgres("t", {
                        ...PG_ARGS,
                        ...override,
                    });
                },
            }),
        ).rejects.toThrow(message);
    });
});
