/**
 * The offline mirror's stand-ins (tools/mirror-images.ts): each upstream reference is pushed at the path the node's
 * containerd asks the mirror for, the images' layout follows upstream's, and docs/airgap.md's stand-in table says
 * exactly what the module builds and what it cannot.
 */
import * as fs from "fs";
import * as path from "path";
import { builtFrom, goDockerfile, MIRROR_EXCEPTIONS, MIRROR_IMAGES, mirrorPath } from "../tools/mirror-images";
import { ROOT } from "../tools/stacks";

describe("mirrorPath: an upstream reference's path in the mirror (containerd's hosts.toml mirror, no host)", () => {
    test.each([
        ["docker.io/redis:7.4.6", "library/redis:7.4.6"],
        ["redis:7.4.6", "library/redis:7.4.6"],
        ["prom/statsd-exporter:v0.28.0", "prom/statsd-exporter:v0.28.0"],
        ["docker.io/oliver006/redis_exporter:v1.77.0", "oliver006/redis_exporter:v1.77.0"],
        ["quay.io/prometheus/prometheus:v3.14.0", "prometheus/prometheus:v3.14.0"],
        ["ghcr.io/cloudnative-pg/postgresql:17.11-standard-trixie", "cloudnative-pg/postgresql:17.11-standard-trixie"],
        [
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
            "kube-state-metrics/kube-state-metrics:v2.20.0",
        ],
        ["localhost:5001/fx-base:abc", "fx-base:abc"],
    ])("%s -> %s", (reference, expected) => {
        expect(mirrorPath(reference)).toBe(expected);
    });
});

describe("the stand-ins' layout", () => {
    const spec = (reference: string) => MIRROR_IMAGES.find((s) => s.reference === reference)!;

    test("the CloudNativePG operator has /manager (what the operand's bootstrap-controller runs) and upstream's user", () => {
        const cnpg = spec("ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0");
        expect(cnpg).toMatchObject({
            kind: "go",
            at: "/operator/manager_amd64",
            links: { "/manager": "operator/manager_amd64" },
            user: "65532:65532",
            entrypoint: ["/manager"],
        });
    });

    test("Prometheus's Dockerfile: its files owned by nobody, upstream's entrypoint, command, workdir and volume", () => {
        const prometheus = spec("quay.io/prometheus/prometheus:v3.14.0");
        expect(prometheus.kind).toBe("go");
        if (prometheus.kind !== "go") return;
        expect(goDockerfile(prometheus, { "dev.fx-ml.stand-in": "true" })).toBe(
            [
                "FROM scratch",
                "COPY rootfs/ /",
                "COPY --chown=65534:65534 owned/ /",
                'LABEL dev.fx-ml.stand-in="true"',
                "USER nobody",
                "WORKDIR /prometheus",
                "EXPOSE 9090",
                'VOLUME ["/prometheus"]',
                'ENTRYPOINT ["/bin/prometheus"]',
                'CMD ["--config.file=/etc/prometheus/prometheus.yml","--storage.tsdb.path=/prometheus"]',
                "",
            ].join("\n"),
        );
    });

    test("redis_exporter is the newest version the proxy serves, and says so", () => {
        const exporter = spec("docker.io/oliver006/redis_exporter:v1.77.0");
        expect(exporter).toMatchObject({ kind: "go", version: "v1.74.0" });
        expect(exporter.versionDifference).toMatch(/^v1\.74\.0, not v1\.77\.0/);
    });

    test("scripts/tools.sh pins each program at the version the mirror says it is built from", () => {
        const sh = fs.readFileSync(path.join(ROOT, "scripts", "tools.sh"), "utf8");
        const pin = (name: string) => new RegExp(`^${name}=(\\S+)`, "m").exec(sh)?.[1];
        const goImages = MIRROR_IMAGES.filter((s) => s.kind === "go");
        expect(Object.fromEntries(goImages.map((s) => [s.reference, s.version]))).toEqual({
            "ghcr.io/cloudnative-pg/cloudnative-pg:1.30.0": pin("CNPG_VERSION"),
            "quay.io/prometheus/prometheus:v3.14.0": pin("PROMETHEUS_MODULE_VERSION"),
            "quay.io/prometheus/alertmanager:v0.34.0": pin("ALERTMANAGER_VERSION"),
            "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1": pin("PROMETHEUS_OPERATOR_VERSION"),
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0": pin("KUBE_STATE_METRICS_VERSION"),
            "prom/statsd-exporter:v0.28.0": pin("STATSD_EXPORTER_VERSION"),
            "docker.io/oliver006/redis_exporter:v1.77.0": pin("REDIS_EXPORTER_VERSION"),
        });
        expect(pin("PROMETHEUS_MODULE_VERSION")).toBe("v0.314.0");
        expect(pin("REDIS_EXPORTER_VERSION")).toBe("v1.74.0");
    });

    test("no image is both built and an exception", () => {
        const built = MIRROR_IMAGES.map((s) => s.reference);
        expect(built.filter((r) => r in MIRROR_EXCEPTIONS)).toEqual([]);
        expect(new Set(built).size).toBe(built.length);
    });
});

/** docs/airgap.md's stand-in table: reference -> [built from, version difference]. */
function standInTable(): Map<string, [string, string]> {
    const text = fs.readFileSync(path.join(ROOT, "docs", "airgap.md"), "utf8");
    const section = text.slice(text.indexOf("## The tests' mirror"));
    const out = new Map<string, [string, string]>();
    for (const row of section.split("\n")) {
        const m = /^\| `([^`]+)` \| (.+) \| (.+) \|$/.exec(row);
        if (m) out.set(m[1], [m[2], m[3]]);
    }
    return out;
}

describe("docs/airgap.md's stand-in table", () => {
    test("lists every image the mirror builds with what it is built from and its difference, and every exception with its reason", () => {
        const expected = new Map<string, [string, string]>([
            ...MIRROR_IMAGES.map(
                (s) => [s.reference, [builtFrom(s), s.versionDifference]] as [string, [string, string]],
            ),
            ...Object.entries(MIRROR_EXCEPTIONS).map(
                ([r, why]) => [r, ["not available here", why]] as [string, [string, string]],
            ),
        ]);
        expect([...standInTable()].sort()).toEqual([...expected].sort());
    });

    test("covers exactly the dev stack's third-party images (the list above it, checked against the render)", () => {
        const text = fs.readFileSync(path.join(ROOT, "docs", "airgap.md"), "utf8");
        const dev = [...text.matchAll(/^\| `([^`]+)` \| ([a-z, ]+) \|$/gm)]
            .filter((m) => m[2].split(", ").includes("dev"))
            .map((m) => m[1]);
        expect([...standInTable().keys()].sort()).toEqual(dev.sort());
        expect(dev.length).toBe(15);
    });
});
