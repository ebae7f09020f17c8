import { reveal, StackRun } from "../tools/harness";
import { runWithOptions } from "./resource-options";

const RELEASE = "kubernetes:helm.sh/v3:Release";
const secretRef = (name: string, key: string) => ({ secretKeyRef: { name, key } });

describe.each(["dev", "gpu"] as const)("redis on the %s stack", (stack) => {
    let run: StackRun;
    let protectedRes: Map<string, boolean>;
    beforeAll(async () => {
        ({ run, protectedRes } = await runWithOptions(stack));
    });
    const release = () => run.one(RELEASE, "fx-redis");
    const values = () => release().inputs.values;

    test("groundhog2k/redis at the pinned version runs the official redis image at the configured 7.x tag", () => {
        expect(release().inputs.chart).toBe("redis");
        expect(release().inputs.version).toBe("1.3.8");
        expect(release().inputs.repositoryOpts.repo).toBe("https://groundhog2k.github.io/helm-charts/");
        expect(release().inputs.name).toBe("fx-redis");
        expect(values().fullnameOverride).toBe("fx-redis");
        expect(values().image).toMatchObject({
            registry: "docker.io",
            repository: "redis",
            tag: run.config.redisVersion,
        });
        expect(values().image.tag).toMatch(/^7\.\d+\.\d+$/);
        expect(run.outputs.redisAddress.value).toBe("fx-redis.fx-ml.svc.cluster.local:6379");
    });

    test("append-only file on, and the password comes from Secrets, never from values", () => {
        expect(values().redisConfig).toMatch(/^appendonly yes$/m);
        expect(values().redisConfig).not.toMatch(/requirepass/);
        const config = run.one("kubernetes:core/v1:Secret", "fx-redis-config");
        expect(values().extraSecretRedisConfigs).toBe(config.inputs.metadata.name);
        // The chart appends every file of that Secret to redis.conf: it must hold exactly the requirepass line.
        const files = reveal(config.inputs.stringData);
        const password = reveal(run.one("kubernetes:core/v1:Secret", "fx-redis-auth").inputs.stringData).password;
        expect(files).toEqual({ "requirepass.conf": `requirepass ${password}\n` });
        expect(values().env).toEqual([{ name: "REDISCLI_AUTH", valueFrom: secretRef("redis-auth", "password") }]);
    });

    test("the exporter sidecar is on, authenticates from the Secret and is scraped by annotation", () => {
        const m = values().metrics;
        expect(m.enabled).toBe(true);
        expect(m.serviceMonitor.enabled).toBe(false);
        expect(m.exporter.env).toEqual([{ name: "REDIS_PASSWORD", valueFrom: secretRef("redis-auth", "password") }]);
        expect(values().podAnnotations).toEqual({ "prometheus.io/scrape": "true", "prometheus.io/port": "9121" });
    });

    test("every container (redis, init, exporter) has requests and limits and the restricted security context", () => {
        for (const res of [values().resources, values().initResources, values().metrics.exporter.resources]) {
            expect(Object.keys(res.requests).sort()).toEqual(["cpu", "memory"]);
            expect(Object.keys(res.limits).sort()).toEqual(["cpu", "memory"]);
        }
        for (const sc of [values().securityContext, values().metrics.exporter.securityContext]) {
            expect(sc).toMatchObject({
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ["ALL"] },
                seccompProfile: { type: "RuntimeDefault" },
            });
        }
        // The probes authenticate (REDISCLI_AUTH) and require PONG: a NOAUTH answer is a failure.
        for (const p of ["customStartupProbe", "customLivenessProbe", "customReadinessProbe"]) {
            expect(values()[p].exec.command).toEqual(["sh", "-c", "redis-cli ping | grep -q PONG"]);
        }
    });

    test("the volume is sized by config and kept (release protected, PVC kept) on every stack but dev", () => {
        expect(values().storage.requestedSize).toBe(run.config.redisStorage);
        expect(values().storage.className).toBe(stack === "gpu" ? "standard-rwo" : undefined);
        expect(values().useDeploymentWhenNonHA).toBe(true);
        expect(values().storage.keepPvc).toBe(stack !== "dev");
        expect(protectedRes.get(`${RELEASE}::fx-redis`)).toBe(stack !== "dev");
    });
});
