import * as pulumi from "@pulumi/pulumi";
import { chartSource, chartValues, staticValues } from "../lib/chart-values";
import { CHARTS } from "../lib/charts";

describe("chartValues", () => {
    test("computed values win, nested maps merge key by key, lists replace, Outputs pass through untouched", () => {
        const secretName = pulumi.output("redis-config");
        const v = chartValues("redis", {
            image: { tag: "7.4.6" },
            extraSecretRedisConfigs: secretName,
            env: [{ name: "REDISCLI_AUTH" }],
            resources: { limits: { memory: "512Mi" } },
        }) as any;
        expect(v.image).toEqual({
            registry: "docker.io",
            repository: "redis",
            pullPolicy: "IfNotPresent",
            tag: "7.4.6",
        });
        expect(v.resources).toEqual({
            requests: { cpu: "100m", memory: "384Mi" },
            limits: { cpu: "500m", memory: "512Mi" },
        });
        expect(v.env).toEqual([{ name: "REDISCLI_AUTH" }]);
        expect(v.extraSecretRedisConfigs).toBe(secretName);
        // The static file is not modified by a merge.
        expect((staticValues("redis") as any).resources.limits.memory).toBe("384Mi");
    });

    test("a computed list replaces the static one whole", () => {
        const v = chartValues("cnpg-cluster", {
            cluster: { securityContext: { capabilities: { drop: ["NET_RAW"] } } },
        }) as any;
        expect(v.cluster.securityContext.capabilities.drop).toEqual(["NET_RAW"]);
    });

    test("a missing values file is named, with the files that exist", () => {
        expect(() => chartValues("redsi")).toThrow(/charts-values\/redsi\.yaml does not exist; values files: .*redis/);
    });

    test("chartSource passes the pinned chart, version and repository", () => {
        expect(chartSource(CHARTS.redis, { kind: "public" })).toEqual({
            chart: "redis",
            version: "1.3.8",
            repositoryOpts: { repo: "https://groundhog2k.github.io/helm-charts/" },
        });
    });

    test("chartSource takes each chart from a mirror, an OCI registry or a folder of archives when configured", () => {
        expect(chartSource(CHARTS.redis, { kind: "repository", url: "https://charts.internal/fx" })).toEqual({
            chart: "redis",
            version: "1.3.8",
            repositoryOpts: { repo: "https://charts.internal/fx" },
        });
        expect(chartSource(CHARTS.grafana, { kind: "oci", url: "oci://registry.internal/charts" })).toEqual({
            chart: "oci://registry.internal/charts/grafana",
            version: "12.11.1",
        });
        expect(chartSource(CHARTS.certManager, { kind: "folder", path: "/srv/charts" })).toEqual({
            chart: "/srv/charts/cert-manager-v1.19.1.tgz",
            version: "v1.19.1",
        });
    });
});
