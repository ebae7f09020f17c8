import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { parser } from "@prometheus-io/lezer-promql";
import { ROOT, RecordedResource, StackName, StackRun, reveal, runStack } from "../tools/harness";

/**
 * Monitoring as data: the scrape jobs point at what the program declares, every metric a rule or a dashboard uses is
 * exposed by a catalogued target (monitoring/metrics-catalogue.yaml), rules and dashboards reach Prometheus and
 * Grafana from their files, and every monitoring pod meets the `restricted` Pod Security Standard.
 */

const RELEASE = "kubernetes:helm.sh/v3:Release";
const MONITORING = path.join(ROOT, "monitoring");

interface DeclaredBy {
    kind: "workload" | "release" | "monitoring";
    owner: string;
    namespace: "app" | "monitoring";
    name: string;
    port: number;
    path?: string;
    chart?: string;
}
interface Target {
    scrape: string;
    job: string;
    when: "always" | "fingpt";
    declaredBy: DeclaredBy;
    metrics: string[];
}
const catalogue = parse(fs.readFileSync(path.join(MONITORING, "metrics-catalogue.yaml"), "utf8")) as {
    synthetic: string[];
    targets: Record<string, Target>;
};

/** Metric names a PromQL expression selects, from the official parser's syntax tree; throws on a syntax error. */
export function metricNames(expr: string): string[] {
    // Grafana's interval variables are not PromQL.
    const promql = expr.replace(/\$__(rate_interval|interval|range)/g, "5m");
    const tree = parser.parse(promql);
    const names = new Set<string>();
    let error: number | undefined;
    tree.iterate({
        enter(node) {
            if (node.type.isError) error ??= node.from;
            if (node.name === "VectorSelector") {
                const id = node.node.getChild("Identifier");
                if (id) names.add(promql.slice(id.from, id.to));
            }
            if (node.name === "UnquotedLabelMatcher" && /^__name__\s*=\s*"/.test(promql.slice(node.from, node.to))) {
                names.add(promql.slice(node.from, node.to).replace(/^__name__\s*=\s*"([^"]*)"$/, "$1"));
            }
        },
    });
    if (error !== undefined) throw new Error(`PromQL syntax error at ${error} in: ${expr}`);
    return [...names];
}

const runs: Partial<Record<StackName, StackRun>> = {};
async function stack(name: StackName): Promise<StackRun> {
    return (runs[name] ??= await runStack(name));
}
const applies = (t: Target, run: StackRun) => t.when === "always" || run.config.fingptEnabled === true;
const nsOf = (run: StackRun, which: "app" | "monitoring") =>
    String(which === "app" ? run.config.namespace : run.config.monitoringNamespace);

function release(run: StackRun, releaseName: string): RecordedResource {
    const found = run.ofType(RELEASE).filter((r) => r.inputs.name === releaseName);
    if (found.length !== 1) throw new Error(`expected one Release named ${releaseName}, found ${found.length}`);
    return found[0];
}
const values = (r: RecordedResource) => reveal(r.inputs.values);
const prometheusValues = (run: StackRun) => values(release(run, "prometheus"));
const scrapeJobs = (run: StackRun): any[] => prometheusValues(run).serverFiles["prometheus.yml"].scrape_configs;
const ruleGroups = (run: StackRun): any[] => prometheusValues(run).serverFiles["alerting_rules.yml"].groups;
const dashboards = fs
    .readdirSync(path.join(MONITORING, "grafana", "dashboards"))
    .filter((f) => f.endsWith(".json"))
    .map((f) => ({
        file: f,
        dash: JSON.parse(fs.readFileSync(path.join(MONITORING, "grafana", "dashboards", f), "utf8")),
    }));
const panelsOf = (d: any): any[] => (d.panels ?? []).flatMap((p: any) => [p, ...panelsOf(p)]);
const catalogued = (names: Iterable<string>) => {
    const all = new Set([...catalogue.synthetic, ...Object.values(catalogue.targets).flatMap((t) => t.metrics)]);
    return [...names].filter((n) => !all.has(n));
};

describe("the PromQL metric extractor", () => {
    test("finds every selected metric, ignores functions and labels, and rejects bad syntax", () => {
        expect(
            metricNames(
                'histogram_quantile(0.99, sum by (le) (rate(a_bucket{le!=""}[$__rate_interval]))) / on() b or absent({__name__="c"})',
            ).sort(),
        ).toEqual(["a_bucket", "b", "c"]);
        expect(() => metricNames("sum(rate(x[5m])")).toThrow(/syntax error/);
    });
});

describe.each(["dev", "gpu"] as const)("monitoring on the %s stack", (stackName) => {
    test("Prometheus: pinned chart, retention and volume from config, only the subcharts the stack uses", async () => {
        const run = await stack(stackName);
        const r = release(run, "prometheus");
        expect(r.inputs).toMatchObject({ chart: "prometheus", namespace: run.config.monitoringNamespace });
        expect(r.inputs.version).toMatch(/^\d+\.\d+\.\d+$/);
        const v = prometheusValues(run);
        expect(v.server.retention).toBe(run.config.prometheusRetention);
        expect(v.server.persistentVolume).toMatchObject({ enabled: true, size: run.config.prometheusStorage });
        expect(v.server.persistentVolume.storageClass).toBe(run.config.storageClass || undefined);
        expect(v["prometheus-node-exporter"].enabled).toBe(false);
        expect(v["prometheus-pushgateway"].enabled).toBe(false);
        // Every default job of the chart off by name (a null map is dropped by the provider: the chart's defaults
        // came back on the real node).
        expect(v.scrapeConfigs).toEqual({
            prometheus: { enabled: false },
            "kubernetes-api-servers": { enabled: false },
            "kubernetes-nodes": { enabled: false },
            "kubernetes-nodes-cadvisor": { enabled: false },
            "kubernetes-service-endpoints": { enabled: false },
            "kubernetes-service-endpoints-slow": { enabled: false },
            "prometheus-pushgateway": { enabled: false },
            "kubernetes-services": { enabled: false },
            "kubernetes-pods": { enabled: false },
            "kubernetes-pods-slow": { enabled: false },
        });
        expect(v.alertmanager.config.route.receiver).toBe("null");
        expect(v["kube-state-metrics"].namespaces).toBe(`${nsOf(run, "app")},${nsOf(run, "monitoring")}`);
    });

    test("scrape discovery is limited to the stack's namespaces", async () => {
        const run = await stack(stackName);
        for (const job of scrapeJobs(run)) {
            for (const sd of job.kubernetes_sd_configs ?? []) {
                if (sd.role === "node") {
                    // Cluster-scoped kubelet metrics: only the stack's namespaces survive.
                    expect(job.metric_relabel_configs).toContainEqual({
                        source_labels: ["namespace"],
                        regex: `${nsOf(run, "app")}|${nsOf(run, "monitoring")}`,
                        action: "keep",
                    });
                } else {
                    expect({ job: job.job_name, names: sd.namespaces?.names }).toEqual({
                        job: job.job_name,
                        names: [nsOf(run, "app")],
                    });
                }
            }
        }
    });

    test("kubelets are scraped at their own address with Prometheus's token, never through the API server's node proxy", async () => {
        const run = await stack(stackName);
        const kubelet = scrapeJobs(run).find((j) => j.job_name === "kubelet");
        expect(kubelet).toEqual({
            job_name: "kubelet",
            scheme: "https",
            tls_config: { insecure_skip_verify: true },
            authorization: { credentials_file: "/var/run/secrets/kubernetes.io/serviceaccount/token" },
            kubernetes_sd_configs: [{ role: "node" }],
            relabel_configs: [{ source_labels: ["__meta_kubernetes_node_name"], target_label: "node" }],
            metric_relabel_configs: [
                { source_labels: ["__name__"], regex: "kubelet_volume_stats_.+_bytes", action: "keep" },
                {
                    source_labels: ["namespace"],
                    regex: `${nsOf(run, "app")}|${nsOf(run, "monitoring")}`,
                    action: "keep",
                },
            ],
        });
    });

    test("every scrape job belongs to a catalogued target, and every target of the stack has its job", async () => {
        const run = await stack(stackName);
        const jobs = scrapeJobs(run).map((j) => j.job_name);
        expect(new Set(jobs).size).toBe(jobs.length);
        const expected = new Set(
            Object.values(catalogue.targets)
                .filter((t) => applies(t, run))
                .map((t) => t.scrape),
        );
        expect(new Set(jobs)).toEqual(expected);
    });

    test("static scrape targets are the Services of releases the program declares", async () => {
        const run = await stack(stackName);
        const mon = nsOf(run, "monitoring");
        const statics = scrapeJobs(run).flatMap((j) => (j.static_configs ?? []).flatMap((s: any) => s.targets));
        expect(statics.sort()).toEqual(
            [
                "localhost:9090",
                `kube-state-metrics.${mon}.svc.cluster.local:8080`,
                `statsd-exporter.${mon}.svc.cluster.local:9102`,
            ].sort(),
        );
        const statsd = values(release(run, "statsd-exporter"));
        expect(statsd).toMatchObject({ fullnameOverride: "statsd-exporter", service: { port: 9102 } });
        expect(statsd.statsd.udpPort).toBe(9125);
        const ksm = prometheusValues(run)["kube-state-metrics"];
        expect(ksm).toMatchObject({ enabled: true, fullnameOverride: "kube-state-metrics" });
    });

    describe("every catalogued target of the stack is declared by the program", () => {
        for (const [id, t] of Object.entries(catalogue.targets)) {
            const d = t.declaredBy;
            test(`${id} (${d.kind} ${d.name}:${d.port})`, async () => {
                const run = await stack(stackName);
                if (!applies(t, run)) return;
                const ns = nsOf(run, d.namespace);
                if (d.kind === "workload") {
                    const pods = run
                        .ofType("kubernetes:apps/v1:Deployment")
                        .concat(run.ofType("kubernetes:apps/v1:StatefulSet"))
                        .filter((w) => w.inputs.metadata?.namespace === ns)
                        .map((w) => w.inputs.spec.template)
                        .filter((tpl) => tpl.metadata?.labels?.["app.kubernetes.io/name"] === d.name);
                    expect(pods).toHaveLength(1);
                    expect(pods[0].metadata.annotations).toMatchObject({
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": String(d.port),
                        "prometheus.io/path": d.path,
                    });
                    const ports = pods[0].spec.containers
                        .flatMap((c: any) => c.ports ?? [])
                        .map((p: any) => p.containerPort);
                    expect(ports).toContain(d.port);
                } else if (d.kind === "release") {
                    const r = run
                        .ofType(RELEASE)
                        .filter((x) => x.inputs.chart === d.chart && x.inputs.namespace === ns);
                    expect(r.map((x) => x.inputs.name)).toEqual([d.name]);
                    if (t.scrape === "kubernetes-pods") {
                        expect(values(r[0]).podAnnotations).toMatchObject({
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": String(d.port),
                        });
                    }
                } else {
                    expect(scrapeJobs(run).map((j) => j.job_name)).toContain(t.scrape);
                }
            });
        }
    });

    test("alert rules come from the rule files that apply to the stack, unchanged", async () => {
        const run = await stack(stackName);
        const fromFiles = (f: string) =>
            parse(fs.readFileSync(path.join(MONITORING, "prometheus", "rules", f), "utf8")).groups;
        // Files in name order; fingpt.yaml only where FinGPT runs.
        const expected = [...(run.config.fingptEnabled ? fromFiles("fingpt.yaml") : []), ...fromFiles("pipeline.yaml")];
        expect(ruleGroups(run)).toEqual(expected);
        expect(ruleGroups(run).some((g) => g.name === "fx-fingpt")).toBe(run.config.fingptEnabled === true);
    });

    test("every metric an alert of the stack uses is exposed by a target the stack runs", async () => {
        const run = await stack(stackName);
        const exposed = new Set([
            ...catalogue.synthetic,
            ...Object.values(catalogue.targets)
                .filter((t) => applies(t, run))
                .flatMap((t) => t.metrics),
        ]);
        const missing = ruleGroups(run)
            .flatMap((g) => g.rules)
            .flatMap((r: any) => metricNames(r.expr).map((m) => `${r.alert}: ${m}`))
            .filter((m: string) => !exposed.has(m.split(": ")[1]));
        expect(missing).toEqual([]);
    });

    test("Grafana: admin from the Secret, Prometheus datasource provisioned, dashboards by sidecar", async () => {
        const run = await stack(stackName);
        const g = release(run, "grafana");
        expect(g.inputs).toMatchObject({ chart: "grafana", namespace: run.config.monitoringNamespace });
        const v = values(g);
        expect(v.admin).toEqual({
            existingSecret: "grafana-admin",
            userKey: "admin-user",
            passwordKey: "admin-password",
        });
        expect(v.adminPassword).toBeUndefined();
        expect(v.datasources["datasources.yaml"].datasources).toEqual([
            expect.objectContaining({
                uid: "prometheus",
                type: "prometheus",
                url: `http://prometheus-server.${run.config.monitoringNamespace}.svc.cluster.local:80`,
                isDefault: true,
            }),
        ]);
        expect(v.sidecar.dashboards).toMatchObject({ enabled: true, label: "grafana_dashboard", labelValue: "1" });
        const maps = run
            .ofType("kubernetes:core/v1:ConfigMap")
            .filter((c) => c.inputs.metadata.labels?.grafana_dashboard);
        expect(maps.map((c) => Object.keys(c.inputs.data)[0]).sort()).toEqual(dashboards.map((d) => d.file).sort());
        for (const c of maps) {
            expect(c.inputs.metadata).toMatchObject({
                namespace: run.config.monitoringNamespace,
                labels: { grafana_dashboard: "1" },
            });
        }
    });

    test("StatsD exporter gets the Airflow mapping file as is", async () => {
        const run = await stack(stackName);
        const r = release(run, "statsd-exporter");
        expect(r.inputs).toMatchObject({
            chart: "prometheus-statsd-exporter",
            namespace: run.config.monitoringNamespace,
        });
        expect(values(r).statsd.mappingConfig).toBe(
            fs.readFileSync(path.join(MONITORING, "statsd", "mapping.yaml"), "utf8"),
        );
    });

    test("every monitoring pod meets the restricted Pod Security Standard and has requests and limits", async () => {
        const run = await stack(stackName);
        const p = prometheusValues(run);
        const g = values(release(run, "grafana"));
        const s = values(release(run, "statsd-exporter"));
        expect(p.server.resources).toEqual({
            requests: { cpu: run.config.prometheusCpuRequest, memory: run.config.prometheusMemory },
            limits: { cpu: run.config.prometheusCpuLimit, memory: run.config.prometheusMemory },
        });
        const pods: [string, any, any, any][] = [
            ["prometheus server", p.server.securityContext, p.server.containerSecurityContext, p.server.resources],
            [
                "config reloader",
                p.server.securityContext,
                p.configmapReload.prometheus.containerSecurityContext,
                p.configmapReload.prometheus.resources,
            ],
            [
                // The subchart's own names: podSecurityContext (pod), securityContext (container).
                "alertmanager",
                p.alertmanager.podSecurityContext,
                p.alertmanager.securityContext,
                p.alertmanager.resources,
            ],
            [
                "kube-state-metrics",
                p["kube-state-metrics"].securityContext,
                p["kube-state-metrics"].containerSecurityContext,
                p["kube-state-metrics"].resources,
            ],
            ["grafana", g.securityContext, g.containerSecurityContext, g.resources],
            ["grafana sidecar", g.securityContext, g.sidecar.securityContext, g.sidecar.resources],
            ["statsd-exporter", s.podSecurityContext, s.securityContext, s.resources],
        ];
        for (const [what, pod, container, res] of pods) {
            expect({ what, runAsNonRoot: pod.runAsNonRoot, seccomp: pod.seccompProfile?.type }).toEqual({
                what,
                runAsNonRoot: true,
                seccomp: "RuntimeDefault",
            });
            expect({ what, ape: container.allowPrivilegeEscalation, drop: container.capabilities?.drop }).toEqual({
                what,
                ape: false,
                drop: ["ALL"],
            });
            expect({
                what,
                requests: Object.keys(res.requests).sort(),
                limits: Object.keys(res.limits).sort(),
            }).toEqual({
                what,
                requests: ["cpu", "memory"],
                limits: ["cpu", "memory"],
            });
        }
    });
});

describe("monitoring files", () => {
    const allRules = fs
        .readdirSync(path.join(MONITORING, "prometheus", "rules"))
        .flatMap((f) => parse(fs.readFileSync(path.join(MONITORING, "prometheus", "rules", f), "utf8")).groups)
        .flatMap((g: any) => g.rules);

    test("every alert has a severity, a pending period and a runbook line", () => {
        expect(allRules.length).toBeGreaterThanOrEqual(8);
        for (const r of allRules) {
            expect({ alert: r.alert, severity: r.labels?.severity, hasFor: /^\d+m$/.test(r.for) }).toEqual({
                alert: r.alert,
                severity: expect.stringMatching(/^(warning|critical)$/),
                hasFor: true,
            });
            expect(r.annotations.runbook).toMatch(/\S.{20,}/);
        }
    });

    test("every metric used in an alert rule or a dashboard panel is catalogued", () => {
        const used = new Set<string>();
        for (const r of allRules) metricNames(r.expr).forEach((m) => used.add(m));
        for (const { dash } of dashboards) {
            for (const p of panelsOf(dash))
                for (const t of p.targets ?? []) metricNames(t.expr).forEach((m) => used.add(m));
        }
        expect(used.size).toBeGreaterThan(20);
        expect(catalogued(used)).toEqual([]);
    });

    test("the catalogue's Airflow metrics are exactly what the StatsD mapping produces", () => {
        const mapping = parse(fs.readFileSync(path.join(MONITORING, "statsd", "mapping.yaml"), "utf8"));
        const produced = new Set<string>();
        for (const m of mapping.mappings) {
            if (m.action === "drop") continue;
            const histogram = m.match_metric_type === "observer";
            for (const n of histogram ? ["_bucket", "_sum", "_count"].map((s) => m.name + s) : [m.name])
                produced.add(n);
        }
        expect(new Set(catalogue.targets.airflow.metrics)).toEqual(produced);
    });

    test("dashboards are valid JSON with unique uids, and every panel queries the provisioned Prometheus", () => {
        const uids = dashboards.map(({ dash }) => dash.uid);
        expect(uids.every((u) => typeof u === "string" && /^[a-z0-9-]{1,40}$/.test(u))).toBe(true);
        expect(new Set(uids).size).toBe(uids.length);
        for (const { file, dash } of dashboards) {
            const panels = panelsOf(dash).filter((p) => p.type !== "row");
            expect({ file, panels: panels.length > 0 }).toEqual({ file, panels: true });
            const ids = panelsOf(dash).map((p) => p.id);
            expect(new Set(ids).size).toBe(ids.length);
            for (const p of panels) {
                expect({ panel: p.title, ds: p.datasource }).toEqual({
                    panel: p.title,
                    ds: { type: "prometheus", uid: "prometheus" },
                });
                expect(p.targets.length).toBeGreaterThan(0);
            }
        }
    });
});
