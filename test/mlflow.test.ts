import { runProgram, runStack } from "../tools/harness";

const IMAGE = "localhost:5001/fx-mlflow@sha256:" + "a".repeat(64);

/** Declares the MLflow component alone, with a PVC or an object store for artifacts. */
function mlflowProgram(artifacts: "pvc" | "objectStore") {
    return () => {
        const pulumi = require("@pulumi/pulumi");
        const { Mlflow } = require("../components/apps/mlflow");
        const m = new Mlflow("fx", {
            namespace: "fx-ml",
            image: IMAGE,
            backendStoreUri: { name: pulumi.output("mlflow-backend-store"), key: "uri" },
            resources: { cpuRequest: "100m", cpuLimit: "1", memory: "768Mi" },
            artifacts:
                artifacts === "pvc"
                    ? { kind: "pvc", size: "5Gi", storageClass: "standard-rwo", retainOnDelete: true }
                    : { kind: "objectStore", destination: "s3://fx-mlflow/artifacts", credentialsSecretName: "s3" },
            domain: "fx-ml.example.com",
        });
        return { trackingUri: m.trackingUri };
    };
}

describe("mlflow", () => {
    test("the tracking server reads its Postgres URI from the Secret key it is given, and declares no Secret", async () => {
        const run = await runProgram(mlflowProgram("pvc"));
        const dep = run.one("kubernetes:apps/v1:Deployment", "mlflow");
        const c = dep.inputs.spec.template.spec.containers[0];
        expect(c.env).toContainEqual({
            name: "MLFLOW_BACKEND_STORE_URI",
            valueFrom: { secretKeyRef: { name: "mlflow-backend-store", key: "uri" } },
        });
        expect(run.ofType("kubernetes:core/v1:Secret")).toEqual([]);
    });

    test("artifacts are served by the server from a retained PVC, with Recreate so the RWO volume can move", async () => {
        const run = await runProgram(mlflowProgram("pvc"));
        const pvc = run.one("kubernetes:core/v1:PersistentVolumeClaim", "fx-artifacts");
        expect(pvc.inputs.spec.resources.requests.storage).toBe("5Gi");
        expect(pvc.inputs.spec.storageClassName).toBe("standard-rwo");
        const dep = run.one("kubernetes:apps/v1:Deployment", "mlflow");
        const spec = dep.inputs.spec.template.spec;
        const c = spec.containers[0];
        expect(c.image).toBe(IMAGE);
        expect(c.command).toEqual(["mlflow", "server"]);
        expect(c.args).toEqual(
            expect.arrayContaining([
                "--host=0.0.0.0",
                "--port=5000",
                "--serve-artifacts",
                "--artifacts-destination=/mlflow/artifacts",
                "--expose-prometheus=/tmp/mlflow-metrics",
            ]),
        );
        expect(c.volumeMounts).toContainEqual({ name: "artifacts", mountPath: "/mlflow/artifacts" });
        expect(spec.volumes).toContainEqual({
            name: "artifacts",
            persistentVolumeClaim: { claimName: "mlflow-artifacts" },
        });
        expect(dep.inputs.spec.strategy).toEqual({ type: "Recreate" });
    });

    test("object storage replaces the PVC and brings its credentials by Secret reference", async () => {
        const run = await runProgram(mlflowProgram("objectStore"));
        expect(run.ofType("kubernetes:core/v1:PersistentVolumeClaim")).toEqual([]);
        const c = run.one("kubernetes:apps/v1:Deployment", "mlflow").inputs.spec.template.spec.containers[0];
        expect(c.args).toContain("--artifacts-destination=s3://fx-mlflow/artifacts");
        expect(c.envFrom).toEqual([{ secretRef: { name: "s3" } }]);
    });

    test("MLflow 3 accepts the Service DNS names and the ingress host, with and without a port", async () => {
        const run = await runProgram(mlflowProgram("pvc"));
        const c = run.one("kubernetes:apps/v1:Deployment", "mlflow").inputs.spec.template.spec.containers[0];
        // No server-side job runner: seven extra processes, about 1.2 GiB, for features the pipeline does not use.
        expect(c.env).toContainEqual({ name: "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", value: "false" });
        expect(c.env).toContainEqual({ name: "MLFLOW_DISABLE_TELEMETRY", value: "true" });
        const hosts = c.env.find((e: any) => e.name === "MLFLOW_SERVER_ALLOWED_HOSTS").value.split(",");
        for (const h of ["mlflow", "mlflow.fx-ml", "mlflow.fx-ml.svc.cluster.local", "mlflow.fx-ml.example.com"]) {
            expect(hosts).toContain(h);
            expect(hosts).toContain(`${h}:*`);
        }
        expect(hosts).not.toContain("*");
    });

    test("health probes, Service on 5000 and Prometheus annotations", async () => {
        const run = await runProgram(mlflowProgram("pvc"));
        const dep = run.one("kubernetes:apps/v1:Deployment", "mlflow");
        const c = dep.inputs.spec.template.spec.containers[0];
        for (const p of [c.startupProbe, c.readinessProbe]) {
            expect(p.httpGet).toEqual({ path: "/health", port: "http" });
        }
        expect(c.livenessProbe).toEqual(expect.objectContaining({ tcpSocket: { port: "http" } }));
        expect(dep.inputs.spec.template.metadata.annotations).toEqual({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "5000",
            "prometheus.io/path": "/metrics",
        });
        const svc = run.one("kubernetes:core/v1:Service", "mlflow");
        expect(svc.inputs.spec.ports).toEqual([{ name: "http", port: 5000, targetPort: "http", protocol: "TCP" }]);
        expect(run.outputs.trackingUri.value).toBe("http://mlflow.fx-ml.svc.cluster.local:5000");
    });
});

test("gpu with mlflowArtifactDestination: artifacts in an S3-compatible store, endpoint and credentials by reference, no PVC", async () => {
    const run = await runStack("gpu", {
        config: {
            mlflowArtifactDestination: "s3://example-org-fx-mlflow/artifacts",
            mlflowArtifactEndpoint: "https://storage.googleapis.com",
            mlflowArtifactCredentialsSecret: "mlflow-s3",
        },
    });
    expect(run.ofType("kubernetes:core/v1:PersistentVolumeClaim", /mlflow/)).toEqual([]);
    const dep = run.one("kubernetes:apps/v1:Deployment", "mlflow").inputs.spec;
    const c = dep.template.spec.containers[0];
    expect(c.args).toContain("--artifacts-destination=s3://example-org-fx-mlflow/artifacts");
    expect(c.env).toContainEqual({ name: "MLFLOW_S3_ENDPOINT_URL", value: "https://storage.googleapis.com" });
    expect(c.envFrom).toEqual([{ secretRef: { name: "mlflow-s3" } }]);
    expect(c.volumeMounts ?? []).not.toContainEqual(expect.objectContaining({ name: "artifacts" }));
    // Without a volume to move, the rollout is a rolling update.
    expect(dep.strategy.type).toBe("RollingUpdate");
});
