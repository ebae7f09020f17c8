import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { chartSource, chartValues, staticValues, VALUES_DIR } from "../lib/chart-values";
import { ChartRef, CHARTS } from "../lib/charts";

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

describe("the chart registry (lib/charts.ts)", () => {
    test("each values file under charts-values/ belongs to one registry entry, and each entry's file exists", () => {
        const files = fs
            .readdirSync(VALUES_DIR)
            .filter((f) => f.endsWith(".yaml"))
            .map((f) => f.slice(0, -5))
            .sort();
        const named = Object.values(CHARTS)
            .map((ref: ChartRef) => ref.values)
            .filter((v): v is string => v !== undefined)
            .sort();
        expect(named).toEqual(files);
        expect(new Set(named).size).toBe(named.length);
    });

    test("every entry installs under its own release name", () => {
        const releases = Object.values(CHARTS).map((ref) => ref.release);
        expect(new Set(releases).size).toBe(releases.length);
    });
});
