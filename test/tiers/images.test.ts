/**
 * The images tier (`npm run test:images`): `pulumi up` of the dev stack by the real Pulumi CLI and the real Kubernetes
 * provider against a real kube-apiserver (tools/apiserver.ts), with every dev image built for real by BuildKit on a
 * Docker engine and pushed to a local registry, then `pulumi destroy`. The stack is prepared as the preview tier
 * prepares it (tools/engine.ts prepareStack: a fresh stack, the stack file's config plus the cluster target and
 * `chartRepository` = ../shared/charts, an inline program, a throwaway file backend, no network for the engine).
 *
 * Docker: tools/docker.ts starts Debian's dockerd (its own socket, its data root under $HOME/.cache/fx-ml-docker so the
 * layer cache survives) unless DOCKER_HOST names one that answers, and Debian's docker-registry on localhost:5001 (the
 * dev stack's registryServer). The third-party bases are STAND-INS built here under their exact references
 * (tools/standin-images.ts: debootstrap and PyPI; no image registry is reachable).
 *
 * Plugins: kubernetes is the real provider; random, docker and kubernetes-cert-manager are STAND-INS
 * (tools/standins/provider.ts; no registry here serves them). The docker stand-in does what @pulumi/docker's Image
 * does: build, push, and the pushed repo digest as `repoDigest` (tools/standins/docker-build.ts).
 *
 * It asserts against the API server, the registry and the images themselves: what the up created; custom resources
 * created after their CRDs and namespaced objects after their Namespace (the engine's own event order); every image
 * pushed and referenced by digest; each runs as its pods' user, its pods' commands start and its application imports;
 * its OCI labels are this build's; the layers our Dockerfiles add hold no CA of this machine and no secret; a broken
 * Dockerfile fails the up naming the image and the step; the destroy leaves nothing behind. Figures:
 * bench/results/images.md.
 *
 * TEST-ONLY SETTING (nothing in the stack's config: config is strict, and a knob there would be a footgun). With no
 * kubelet nothing ever becomes ready, so the inline program wrapper registers a stack transform (`testOnlyNoWaits`,
 * tools/update-checks.ts) before it loads index.ts:
 * - every Kubernetes object but a Namespace gets the `pulumi.com/skipAwait: "true"` annotation (the provider's own
 *   switch for its readiness waits); Namespaces keep theirs, so the destroy really waits for each to be gone;
 * - every Helm Release gets `skipAwait: true`, `disableWebhooks: true` (the provider's name for Helm's
 *   --no-hooks) and a post-renderer that sets `failurePolicy: Ignore` on the charts' admission webhooks, whose
 *   servers (cert-manager's, CloudNativePG's) cannot run here; the API server reaches webhooks through endpoints
 *   (startApiServer `endpointRouting`), so each call fails at once and is ignored instead of timing out.
 * kube-controller-manager runs only the controllers that finish deletions (namespace, garbage collector, PVC/PV
 * protection): a Namespace stays Terminating and a PVC keeps its pvc-protection finalizer without them.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { DestroyResult, LocalWorkspace, Stack, UpResult } from "@pulumi/pulumi/automation";
import { ApiServer, startApiServer } from "../../tools/apiserver";
import {
    DOCKER_CACHE,
    DockerEngine,
    dockerHostTrace,
    DockerHostTrace,
    inspectImage,
    pruneImages,
    pruneRegistry,
    Registry,
    startDocker,
    startRegistry,
} from "../../tools/docker";
import {
    destroy,
    offlineEngineEnv,
    prepareStack,
    projectCopy,
    projectProgram,
    up,
    UpdateRun,
} from "../../tools/engine";
import { certificateNeedles, Needle, scanImages, ScanResult } from "../../tools/image-scan";
import { writeImageFigures } from "../../tools/images-figures";
import { KubeObject, listAll } from "../../tools/kube-apply";
import { installPlugins, InstalledPlugin } from "../../tools/plugins";
import { ROOT, runStack } from "../../tools/harness";
import { SHARED_DATA } from "../../tools/stacks";
import {
    buildStandInBases,
    CUDA_UNBUILDABLE,
    machineCaFiles,
    PYTHON_REF,
    StandInBase,
    standInBaseOf,
    airflowVersionsOf,
} from "../../tools/standin-images";
import {
    CONTROLLERS,
    madeByServerFor,
    objectKey,
    orderViolations,
    SETTLE_SECONDS,
    stepsOf,
    testOnlyNoWaits,
    writeWebhookPostRenderer,
} from "../../tools/update-checks";

const RESULTS = path.join(ROOT, "out", "images");

/** One image the up built: what the docker Image resource answered, and when its step began and ended. */
interface BuiltImage {
    name: string;
    repository: string;
    imageName: string;
    repoDigest: string;
    buildArgs: Record<string, string>;
    seconds: number;
}

let docker: DockerEngine;
let registry: Registry;
let bases: StandInBase[];
let server: ApiServer;
let home: string;
let plugins: InstalledPlugin[];
let stack: Stack;
let upRun: UpdateRun<UpResult>;
let againRun: UpdateRun<UpResult>;
let hostBefore: DockerHostTrace;
let destroyRun: UpdateRun<DestroyResult>;
let baseline: Set<string>;
let created: KubeObject[];
let left: KubeObject[];
let stackResourcesAfterDestroy: number;
let built: BuiltImage[];
let secretValues: string[];
let coldCache: boolean;
const output: string[] = [];
const timings: Record<string, number> = {};

/** The engine's output and the servers' own, for a failure message. */
function diagnostics(): string {
    return (
        `--- engine output (last 200 lines) ---\n${output.join("").split("\n").slice(-200).join("\n")}\n` +
        `${server?.logs(60) ?? ""}\n${docker?.logs(60) ?? ""}\n${registry?.logs(20) ?? ""}`
    );
}

async function timed<T>(label: string, f: () => Promise<T> | T): Promise<T> {
    const t0 = Date.now();
    try {
        return await f();
    } finally {
        timings[label] = Math.round((Date.now() - t0) / 100) / 10;
        process.stdout.write(`[images] ${label}: ${timings[label]} s\n`);
    }
}

/**
 * Objects the stack put in the server: all it stores less what it stored before the up (by uid), and less Events
 * (`v1` and `events.k8s.io/v1`): records the API server and the controllers write about objects, which no program
 * creates and which expire on their own (one about the fastapi objects appeared in some runs only).
 */
async function stackObjects(): Promise<KubeObject[]> {
    return (await listAll(server)).filter((o) => !baseline.has(o.metadata.uid as string) && o.kind !== "Event");
}

/** The docker Images of an up, from the engine's events: outputs, and the seconds between their step's events. */
function builtImages(run: UpdateRun<UpResult>): BuiltImage[] {
    const started = new Map<string, number>();
    const out: BuiltImage[] = [];
    for (const e of run.events) {
        const pre = e.resourcePreEvent?.metadata;
        if (pre?.type === "docker:index/image:Image") started.set(pre.urn, e.timestamp);
        const res = e.resOutputsEvent?.metadata;
        if (res?.type === "docker:index/image:Image") {
            const o = res.new?.outputs ?? {};
            const imageName = String(o.imageName);
            out.push({
                name: res.urn.split("::").pop()!,
                repository: imageName.replace(/^[^/]+\//, "").split(":")[0],
                imageName,
                repoDigest: String(o.repoDigest),
                buildArgs: o.build?.args ?? {},
                seconds: e.timestamp - (started.get(res.urn) ?? e.timestamp),
            });
        }
    }
    return out.sort((a, b) => a.repository.localeCompare(b.repository));
}

/** Every container of a pod template in the objects, with the pod's security context. */
function containers(objects: KubeObject[]): { owner: string; pod: any; container: any }[] {
    const out: { owner: string; pod: any; container: any }[] = [];
    for (const o of objects) {
        const pod = o.spec?.template?.spec ?? o.spec?.jobTemplate?.spec?.template?.spec;
        if (!pod) continue;
        for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])])
            out.push({ owner: `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`, pod, container: c });
    }
    return out;
}

/**
 * The argv a container runs (Kubernetes: `command` replaces the image's ENTRYPOINT, `args` its CMD), with `--help`
 * added to its last command: inside a `bash -c` script, or as one more argument.
 */
function helpArgv(c: { command?: string[]; args?: string[] }): { entrypoint?: string; argv: string[] } {
    const command = c.command ?? [];
    const argv = [...command.slice(1), ...(c.args ?? [])];
    const full = [...command.slice(0, 1), ...argv];
    const bash = full.findIndex((a, i) => a === "-c" && /(^|\/)bash$/.test(full[i - 1] ?? ""));
    if (bash >= 0 && bash === full.length - 2) {
        const withHelp = [...argv];
        withHelp[withHelp.length - 1] = `${withHelp[withHelp.length - 1]} --help`;
        return { entrypoint: command[0], argv: withHelp };
    }
    return { entrypoint: command[0], argv: [...argv, "--help"] };
}

/** `docker run` as the pod runs it: its user and group, no capabilities, no privilege escalation, no network. */
function runAsPod(image: string, user: string, entrypoint: string | undefined, argv: string[], workdir?: string) {
    const args = ["run", "--rm", "--network=none", "--cap-drop=ALL", "--security-opt=no-new-privileges"];
    args.push(`--user=${user}`);
    if (workdir) args.push(`--workdir=${workdir}`);
    if (entrypoint) args.push(`--entrypoint=${entrypoint}`);
    return docker.spawn([...args, image, ...argv], { timeoutSeconds: 300 });
}

describe("up and destroy of dev against a real API server, every image built and pushed for real", () => {
    beforeAll(async () => {
        const t0 = Date.now();
        home = fs.mkdtempSync(path.join(os.tmpdir(), "fx-images-"));
        const dataRoot = path.join(DOCKER_CACHE, "data");
        coldCache = !fs.existsSync(dataRoot) || fs.readdirSync(dataRoot).length === 0;
        try {
            hostBefore = dockerHostTrace();
            docker = await timed("Docker engine start", () => startDocker());
            registry = await timed("registry start", () => startRegistry(5001));
            const mock = await runStack("dev");
            const airflowVersions = airflowVersionsOf(mock);
            bases = await timed("stand-in bases", () =>
                buildStandInBases(docker, { airflowVersions, log: (s) => process.stdout.write(`${s}\n`) }),
            );
            server = await timed("API server start", () =>
                startApiServer({ controllers: CONTROLLERS, endpointRouting: true }),
            );
            const pulumiHome = path.join(home, "pulumi-home");
            plugins = installPlugins(pulumiHome, path.join(home, "plugins"));
            const env = {
                ...offlineEngineEnv(pulumiHome, "images-up"),
                PULUMI_BACKEND_URL: `file://${fs.mkdtempSync(path.join(home, "state-"))}`,
                DOCKER_HOST: docker.host,
            };
            const postRenderer = writeWebhookPostRenderer(home);
            stack = await prepareStack({
                stack: "dev",
                workDir: projectCopy(home),
                program: projectProgram(testOnlyNoWaits(postRenderer)),
                config: {
                    kubeconfig: server.kubeconfig,
                    kubeContext: server.context,
                    chartRepository: SHARED_DATA.charts,
                },
                envVars: env,
            });
            baseline = new Set((await listAll(server)).map((o) => o.metadata.uid as string));
            const onOutput = (s: string) => output.push(s);
            upRun = await timed("pulumi up (builds and pushes every image)", () => up(stack, { onOutput }));
            created = await stackObjects();
            built = builtImages(upRun);
            // The same program again, nothing changed: no rebuild, no push, no Kubernetes change.
            againRun = await timed("second pulumi up (no change)", () => up(stack, { onOutput }));
            // Every secret value the stack stored: none may be in an image.
            secretValues = created
                .filter((o) => o.kind === "Secret")
                .flatMap((s) => Object.values((s.data ?? {}) as Record<string, string>))
                .map((v) => Buffer.from(v, "base64").toString("utf8"))
                .filter((v) => v.length >= 8);
            destroyRun = await timed("pulumi destroy", () => destroy(stack, { onOutput }));
            // The controllers finish what the destroy started (a Namespace's content, finalizers), as on any cluster.
            left = await timed("controllers settle", async () => {
                const deadline = Date.now() + SETTLE_SECONDS * 1000;
                for (;;) {
                    const now = await stackObjects();
                    if (now.every((o) => keptOnPurpose(o, now)) || Date.now() > deadline) return now;
                    await new Promise((r) => setTimeout(r, 2000));
                }
            });
            const state = await stack.exportStack();
            stackResourcesAfterDestroy = state.deployment?.resources?.length ?? 0;
        } catch (e) {
            throw new Error(`${(e as Error).message}\n${diagnostics()}`);
        }
        timings["whole setup"] = Math.round((Date.now() - t0) / 100) / 10;
        const kinds: Record<string, number> = {};
        for (const o of created) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
        const record = {
            stack: "dev",
            plugins,
            controllers: CONTROLLERS,
            coldCache,
            timingsSeconds: timings,
            standInBases: bases,
            images: built,
            up: upRun.result.summary.resourceChanges,
            secondUp: againRun.result.summary.resourceChanges,
            destroy: destroyRun.result.summary.resourceChanges,
            objectsCreated: created.length,
            objectsByKind: kinds,
            objectsLeft: left.map(objectKey),
        };
        fs.mkdirSync(RESULTS, { recursive: true });
        fs.writeFileSync(path.join(RESULTS, "dev-up.json"), JSON.stringify(record, null, 2) + "\n");
        fs.writeFileSync(path.join(RESULTS, "dev-up.log"), output.join(""));
        process.stdout.write(
            `[images] ${JSON.stringify(record.up)} -> ${created.length} objects; images ` +
                `${built.map((b) => `${b.repository} ${b.seconds}s`).join(", ")}\n`,
        );
    }, 3_600_000);

    afterAll(async () => {
        // The teardown test below does this in order; here only for a run that failed before it.
        await server?.stop();
        await registry?.stop();
        await docker?.stop();
    }, 600_000);

    /**
     * CRDs a chart keeps on uninstall on purpose (`helm.sh/resource-policy: keep`: docs/decisions.md), and the
     * APIService the API server registers for their group while they stay; `left` is everything left.
     */
    function keptOnPurpose(o: KubeObject, left: KubeObject[]): boolean {
        if (o.kind === "CustomResourceDefinition")
            return (
                (o.metadata.annotations as Record<string, string> | undefined)?.["helm.sh/resource-policy"] === "keep"
            );
        const crd = madeByServerFor(o, left);
        return o.kind === "APIService" && crd !== undefined && keptOnPurpose(crd, left);
    }

    function find(kind: string, name: string, namespace?: string): KubeObject {
        const o = created.find(
            (c) => c.kind === kind && c.metadata.name === name && c.metadata.namespace === namespace,
        );
        if (!o) throw new Error(`${kind} ${namespace ? `${namespace}/` : ""}${name} is not in the API server`);
        return o;
    }

    function image(repository: string): BuiltImage {
        const b = built.find((i) => i.repository === repository);
        if (!b) throw new Error(`${repository} was not built (built: ${built.map((i) => i.repository).join(", ")})`);
        return b;
    }

    describe("pulumi up", () => {
        test("a second up with no change changes nothing: every resource the same, no image built again", () => {
            const created = upRun.result.summary.resourceChanges?.create ?? 0;
            expect(created).toBeGreaterThan(100);
            expect(againRun.result.summary.resourceChanges).toEqual({ same: created });
        });

        test("creates every resource without error, and the API server holds each Kubernetes object the program declares", async () => {
            expect(upRun.result.summary.result).toBe("succeeded");
            const changes = upRun.result.summary.resourceChanges ?? {};
            expect(Object.keys(changes)).toEqual(["create"]);
            const mock = await runStack("dev");
            const declared = mock.resources.filter(
                (r) => r.custom && r.type.startsWith("kubernetes:") && r.type !== "kubernetes:helm.sh/v3:Release",
            );
            const stored = new Set(created.map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`));
            const missing = declared
                .map((r) => `${r.inputs.kind} ${r.inputs.metadata.namespace ?? ""}/${r.inputs.metadata.name}`)
                .filter((id) => !stored.has(id));
            expect(missing).toEqual([]);
            expect(declared.length).toBeGreaterThan(40);
        });

        test("the namespaces carry their Pod Security labels", async () => {
            const mock = await runStack("dev");
            const namespaces = mock.ofType("kubernetes:core/v1:Namespace");
            expect(namespaces.map((n) => n.inputs.metadata.name).sort()).toEqual(
                ["cert-manager", "cnpg-system", "fx-ml", "fx-ml-monitoring"].sort(),
            );
            for (const n of namespaces) {
                const labels = find("Namespace", n.inputs.metadata.name).metadata.labels!;
                expect(labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
                expect(labels["pod-security.kubernetes.io/audit"]).toBe("restricted");
            }
        });

        test("fastapi's Deployment: the dev stack's requests, no GPU, its probe paths, the image pushed, by digest", () => {
            const d = find("Deployment", "fastapi", "fx-ml");
            const c = d.spec.template.spec.containers.find((x: any) => x.name === "fastapi");
            expect(c.resources.requests).toMatchObject({ cpu: "100m", memory: "512Mi" });
            expect(JSON.stringify(c.resources)).not.toMatch(/nvidia\.com\/gpu/);
            expect(c.readinessProbe.httpGet.path).toBe("/health");
            expect(c.livenessProbe.httpGet.path).toBe("/livez");
            expect(d.spec.replicas).toBe(1);
            expect(c.image).toMatch(/^localhost:5001\/fx-fastapi@sha256:[0-9a-f]{64}$/);
            expect(c.image).toBe(image("fx-fastapi").repoDigest);
        });

        test("the NetworkPolicies are in the API server as declared", async () => {
            const mock = await runStack("dev");
            for (const r of mock.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy")) {
                const np = find("NetworkPolicy", r.inputs.metadata.name, r.inputs.metadata.namespace);
                expect(np.spec.policyTypes).toEqual(r.inputs.spec.policyTypes);
                expect(np.spec.podSelector).toEqual(r.inputs.spec.podSelector ?? {});
            }
            expect(created.filter((o) => o.kind === "NetworkPolicy").length).toBeGreaterThanOrEqual(
                mock.ofType("kubernetes:networking.k8s.io/v1:NetworkPolicy").length,
            );
        });

        test("cert-manager's CRDs and the two ClusterIssuers exist", () => {
            for (const crd of ["certificates", "clusterissuers", "issuers", "certificaterequests"])
                expect(find("CustomResourceDefinition", `${crd}.cert-manager.io`).spec.group).toBe("cert-manager.io");
            expect(find("ClusterIssuer", "fx-ml-selfsigned").spec).toEqual({ selfSigned: {} });
            expect(find("ClusterIssuer", "fx-ml-ca").spec.ca.secretName).toBeTruthy();
        });

        test("every custom resource was created after its CRD, every namespaced object after its Namespace", () => {
            const steps = stepsOf(upRun.events);
            expect(orderViolations(created, steps)).toEqual([]);
            // The check had something to check: custom resources of both charts' CRDs, objects in every namespace.
            const custom = created.filter((o) => /cert-manager\.io|cnpg\.io/.test(o.apiVersion));
            expect(custom.map((o) => o.kind)).toEqual(
                expect.arrayContaining(["ClusterIssuer", "Certificate", "Cluster"]),
            );
        });
    });

    describe("the images", () => {
        test("the six dev images were built and pushed: the registry serves each pushed digest", async () => {
            expect(built.map((b) => b.repository)).toEqual([
                "fx-airflow-scheduler",
                "fx-airflow-webserver",
                "fx-airflow-worker",
                "fx-base",
                "fx-fastapi",
                "fx-mlflow",
            ]);
            for (const b of built) {
                expect(b.imageName).toMatch(new RegExp(`^localhost:5001/${b.repository}:ctx-[0-9a-f]{20}$`));
                expect(b.repoDigest).toMatch(new RegExp(`^localhost:5001/${b.repository}@sha256:[0-9a-f]{64}$`));
                const digest = b.repoDigest.split("@")[1];
                const r = await fetch(`http://localhost:5001/v2/${b.repository}/manifests/${digest}`, {
                    method: "HEAD",
                    headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
                });
                expect([b.repository, r.status, r.headers.get("docker-content-digest")]).toEqual([
                    b.repository,
                    200,
                    digest,
                ]);
            }
        });

        test("every container of the stack that runs one of our images names exactly a pushed digest", () => {
            const ours = containers(created).filter((c) => c.container.image.startsWith("localhost:5001/"));
            const digests = new Set(built.map((b) => b.repoDigest));
            const wrong = ours
                .filter((c) => !digests.has(c.container.image))
                .map((c) => `${c.owner}: ${c.container.image}`);
            expect(wrong).toEqual([]);
            // Every image but fx-base (a base only) runs somewhere.
            const used = new Set(ours.map((c) => c.container.image.split("@")[0].replace("localhost:5001/", "")));
            expect([...used].sort()).toEqual([
                "fx-airflow-scheduler",
                "fx-airflow-webserver",
                "fx-airflow-worker",
                "fx-fastapi",
                "fx-mlflow",
            ]);
        });

        test("fx-fastapi and fx-mlflow are built FROM the fx-base that was pushed: its digest, its layers", () => {
            const base = image("fx-base");
            const baseLayers = inspectImage(docker, base.imageName).RootFS.Layers;
            for (const repository of ["fx-fastapi", "fx-mlflow"]) {
                const b = image(repository);
                expect(b.buildArgs.BASE_IMAGE).toBe(base.repoDigest);
                expect(inspectImage(docker, b.imageName).RootFS.Layers.slice(0, baseLayers.length)).toEqual(baseLayers);
            }
        });

        test("every database URL the stack gives a container loads its driver in that container's image", () => {
            const secrets = new Map(
                created
                    .filter((o) => o.kind === "Secret")
                    .map((s) => [
                        `${s.metadata.namespace}/${s.metadata.name}`,
                        (s.data ?? {}) as Record<string, string>,
                    ]),
            );
            const checks = new Map<string, { image: string; url: string; where: string }>();
            for (const { owner, container } of containers(created)) {
                const b = built.find((i) => i.repoDigest === container.image);
                if (!b) continue;
                const namespace = owner.split(" ")[1].split("/")[0];
                for (const e of container.env ?? []) {
                    const ref = e.valueFrom?.secretKeyRef;
                    const data = ref ? secrets.get(`${namespace}/${ref.name}`)?.[ref.key] : undefined;
                    const url = data ? Buffer.from(data, "base64").toString("utf8") : "";
                    if (/^(db\+)?postgres(ql)?(\+\w+)?:\/\//.test(url))
                        checks.set(`${b.imageName} ${e.name}`, {
                            image: b.imageName,
                            url,
                            where: `${owner}/${container.name} ${e.name}`,
                        });
                }
            }
            // SQLAlchemy loads the dialect's DBAPI module when the engine is made, without connecting; Celery's result
            // backend URL carries a `db+` prefix of its own.
            const code = [
                "import os, sqlalchemy",
                "url = os.environ['FX_DB_URL']",
                "url = url[3:] if url.startswith('db+') else url",
                "print(sqlalchemy.create_engine(url).dialect.driver)",
            ].join("\n");
            const failures: string[] = [];
            for (const c of checks.values()) {
                const r = docker.spawn(
                    [
                        "run",
                        "--rm",
                        "--network=none",
                        "--env",
                        "FX_DB_URL",
                        "--entrypoint",
                        "python",
                        c.image,
                        "-c",
                        code,
                    ],
                    { env: { FX_DB_URL: c.url }, timeoutSeconds: 300 },
                );
                if (r.status !== 0) {
                    // The URL holds a password: only the error's last line, with the URL masked, is shown.
                    const last = `${r.stderr ?? ""}`.trim().split("\n").pop() ?? "";
                    failures.push(`${c.where}: ${last.split(c.url).join("<url>")}`);
                }
            }
            expect(failures).toEqual([]);
            expect([...checks.values()].map((c) => c.where.split(" ").pop()).sort()).toEqual(
                expect.arrayContaining([
                    "AIRFLOW__CELERY__RESULT_BACKEND",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                    "MLFLOW_BACKEND_STORE_URI",
                ]),
            );
        }, 900_000);

        test("OCI labels carry this build's revision and version, not the Dockerfiles' defaults", () => {
            for (const b of built) {
                const labels = inspectImage(docker, b.imageName).Config.Labels ?? {};
                const tag = b.imageName.split(":").pop()!;
                expect(labels["org.opencontainers.image.version"]).toBe(tag);
                expect(labels["org.opencontainers.image.revision"]).toMatch(/^[0-9a-f]{64}$/);
                expect(labels["org.opencontainers.image.revision"].slice(0, 20)).toBe(tag.replace("ctx-", ""));
                expect(labels["org.opencontainers.image.title"]).toBe(b.repository);
            }
        });

        test("each image runs as the user its pods' securityContext names, and every pod's command starts", () => {
            const failures: string[] = [];
            const seen = new Set<string>();
            const ours = containers(created).filter((c) => c.container.image.startsWith("localhost:5001/"));
            for (const { owner, pod, container } of ours) {
                const b = built.find((i) => i.repoDigest === container.image)!;
                const sc = { ...(pod.securityContext ?? {}), ...(container.securityContext ?? {}) };
                const user = `${sc.runAsUser}:${sc.runAsGroup}`;
                // The image's own USER is the pod's: runAsNonRoot verifies the image, so both must agree.
                const imageUser = inspectImage(docker, b.imageName).Config.User ?? "";
                const [uid, gid] = imageUser.split(":");
                if (uid !== String(sc.runAsUser) || (gid !== undefined && gid !== String(sc.runAsGroup)))
                    failures.push(`${owner}/${container.name}: image USER ${imageUser}, pod runs as ${user}`);
                const { entrypoint, argv } = helpArgv(container);
                const key = `${b.imageName} ${user} ${entrypoint} ${argv.join(" ")}`;
                if (seen.has(key)) continue;
                seen.add(key);
                const r = runAsPod(b.imageName, user, entrypoint, argv);
                const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
                if (r.status !== 0 || !/usage/i.test(out))
                    failures.push(
                        `${owner}/${container.name} (${[entrypoint, ...argv].filter(Boolean).join(" ")}) as ${user}: ` +
                            `exit ${r.status ?? r.signal}\n${out.split("\n").slice(-15).join("\n")}`,
                    );
            }
            expect(failures).toEqual([]);
            expect(seen.size).toBeGreaterThanOrEqual(10);
        }, 900_000);

        test("each image's application imports: the service module, the Airflow DAGs with no import errors, the MLflow server", () => {
            const python = (repository: string, user: string, code: string, workdir?: string) => {
                const r = runAsPod(image(repository).imageName, user, "python", ["-c", code], workdir);
                return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
            };
            const ok = (r: { status: number | null; out: string }) => (r.status === 0 ? "" : r.out.slice(-3000));
            expect(ok(python("fx-base", "1000:1000", "import numpy, pydantic, pydantic_settings, yaml"))).toBe("");
            expect(ok(python("fx-fastapi", "1000:1000", "import app.main; print(app.main.app.title)", "/app"))).toBe(
                "",
            );
            expect(
                ok(
                    python(
                        "fx-mlflow",
                        "1000:1000",
                        "import mlflow.server, psycopg2, boto3, prometheus_flask_exporter",
                    ),
                ),
            ).toBe("");
            const dagbag = [
                "import json",
                "try:",
                "    from airflow.dag_processing.dagbag import DagBag",
                "except ImportError:",
                "    from airflow.models.dagbag import DagBag",
                // The images set AIRFLOW__CORE__LOAD_EXAMPLES=False; Airflow 3's DagBag takes no include_examples.
                "bag = DagBag(dag_folder='/opt/airflow/dags')",
                "print('DAGBAG ' + json.dumps({'dags': sorted(bag.dag_ids), 'errors': bag.import_errors}))",
            ].join("\n");
            for (const repository of ["fx-airflow-scheduler", "fx-airflow-webserver", "fx-airflow-worker"]) {
                const r = python(repository, "50000:0", dagbag);
                const line = r.out.split("\n").find((l) => l.startsWith("DAGBAG "));
                if (!line) throw new Error(`${repository}: the DagBag did not load\n${r.out.slice(-3000)}`);
                expect([repository, JSON.parse(line.slice(7))]).toEqual([
                    repository,
                    { dags: ["fx_daily_training", "fx_market_pipeline"], errors: {} },
                ]);
            }
        }, 900_000);

        test("fx-fastapi holds only what its running service imports, within the size budget beside its Dockerfile", () => {
            // dockerfiles/budgets.json: the budget above the Python base, and each installed-but-never-imported
            // distribution allowed with its reason.
            const budget = JSON.parse(fs.readFileSync(path.join(ROOT, "dockerfiles", "budgets.json"), "utf8"))[
                "fx-fastapi"
            ] as { aboveBaseMB: number; allowedUnimported: Record<string, string> };
            const info = inspectImage(docker, image("fx-fastapi").imageName);
            const standIns = bases.map((b) => {
                const s = inspectImage(docker, b.ref);
                return { ref: b.ref, size: s.Size, layers: s.RootFS.Layers };
            });
            const base = standInBaseOf(info.RootFS.Layers, standIns);
            expect(base?.ref).toBe(PYTHON_REF);
            const aboveMB = Math.round((info.Size - (base?.size ?? 0)) / 1e6);
            // The service as the image starts it (gunicorn.conf.py, one worker) under `python -X importtime`, one
            // /predict answered with a model from a registry and features from Redis (stand-ins on the container's
            // loopback: test/fixtures/serving-trace/trace.py), as the pod's user with no network.
            const r = docker.spawn(
                [
                    "run",
                    "--rm",
                    "--network=none",
                    "--cap-drop=ALL",
                    "--security-opt=no-new-privileges",
                    "--user=1000:1000",
                    "--workdir=/app",
                    "--entrypoint=python",
                    "-v",
                    `${path.join(ROOT, "test", "fixtures", "serving-trace")}:/trace:ro`,
                    image("fx-fastapi").imageName,
                    "/trace/trace.py",
                ],
                { timeoutSeconds: 300 },
            );
            const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
            const line = out.split("\n").find((l) => l.startsWith("TRACE "));
            if (!line) throw new Error(`the trace printed no result (exit ${r.status}):\n${out.slice(-4000)}`);
            const trace = JSON.parse(line.slice(6));
            expect([trace.health[0], trace.predict[0], trace.metrics_status]).toEqual([200, 200, 200]);
            const unimported = (trace.installed as string[]).filter((d) => !(trace.reached as string[]).includes(d));
            process.stdout.write(
                `[images] fx-fastapi: ${aboveMB} MB above ${PYTHON_REF} (budget ${budget.aboveBaseMB}); start to ` +
                    `ready ${trace.ready_s} s under -X importtime; ${trace.modules} modules imported; installed, ` +
                    `never imported: ${unimported.join(", ") || "none"}\n`,
            );
            expect(unimported.sort()).toEqual(Object.keys(budget.allowedUnimported).sort());
            expect(aboveMB).toBeLessThanOrEqual(budget.aboveBaseMB);
        }, 600_000);

        describe("the layers our Dockerfiles add", () => {
            let scan: ScanResult;
            let needles: Needle[];
            let skip: Record<string, number>;

            beforeAll(async () => {
                needles = [
                    ...machineCaFiles().flatMap((f) =>
                        certificateNeedles(path.basename(f), fs.readFileSync(f, "utf8")),
                    ),
                    ...secretValues.map((v, i) => ({ label: `secret value #${i + 1}`, bytes: Buffer.from(v) })),
                ];
                // Each image's base: the stand-in whose layers its own begin with (the longest such).
                const baseLayers = bases.map((s) => ({ layers: inspectImage(docker, s.ref).RootFS.Layers }));
                skip = Object.fromEntries(
                    built.map((b) => {
                        const layers = inspectImage(docker, b.imageName).RootFS.Layers;
                        return [b.imageName, standInBaseOf(layers, baseLayers)?.layers.length ?? 0];
                    }),
                );
                scan = await timed("layer scan", () =>
                    scanImages(
                        docker,
                        built.map((b) => b.imageName),
                        skip,
                        needles,
                    ),
                );
                writeImageFigures({
                    docker,
                    cold: coldCache,
                    bases,
                    images: built,
                    upSeconds: timings["pulumi up (builds and pushes every image)"],
                    basesSeconds: timings["stand-in bases"],
                    distinctLayerBytes: scan.bytesRead,
                });
            }, 900_000);

            test("the search had something to find: this machine's CA and the stack's secrets, above a stand-in base", () => {
                expect(machineCaFiles().length).toBeGreaterThan(0);
                expect(secretValues.length).toBeGreaterThanOrEqual(8);
                for (const b of built) expect([b.repository, skip[b.imageName] > 0]).toEqual([b.repository, true]);
                // The stand-in python base does hold the CA: the search finds it where it is.
                expect(Object.values(scan.layersSearched).every((n) => n > 0)).toBe(true);
            });

            test("hold no CA certificate of this machine and no secret value", () => {
                expect(scan.findings.map((f) => `${f.image} layer ${f.layer} ${f.file}: ${f.needle}`)).toEqual([]);
            });

            test("and neither does any image's history, labels or environment", () => {
                const texts = needles.filter((n) => n.label.includes("PEM") || n.label.startsWith("secret"));
                for (const b of built) {
                    const history = docker.run(["history", "--no-trunc", "--format", "{{.CreatedBy}}", b.imageName]);
                    const config = JSON.stringify(inspectImage(docker, b.imageName).Config);
                    const hits = texts.filter(
                        (n) => history.includes(n.bytes.toString()) || config.includes(n.bytes.toString()),
                    );
                    expect([b.repository, hits.map((h) => h.label)]).toEqual([b.repository, []]);
                }
            });

            test("a planted CA in a layer above the base is found, so the search can fail", async () => {
                const planted = `localhost:5001/fx-planted-ca:test`;
                const ctx = fs.mkdtempSync(path.join(home, "planted-"));
                fs.copyFileSync(machineCaFiles()[0], path.join(ctx, "ca.crt"));
                fs.writeFileSync(path.join(ctx, "Dockerfile"), `FROM ${PYTHON_REF}\nCOPY ca.crt /opt/not-a-ca.txt\n`);
                docker.run(["build", "--quiet", "--tag", planted, ctx]);
                try {
                    const baseLayers = inspectImage(docker, PYTHON_REF).RootFS.Layers.length;
                    const r = await scanImages(docker, [planted], { [planted]: baseLayers }, needles);
                    expect(r.findings.map((f) => [f.file, f.needle.replace(/ \((PEM|DER)\)$/, "")])).toContainEqual([
                        "opt/not-a-ca.txt",
                        path.basename(machineCaFiles()[0]),
                    ]);
                } finally {
                    docker.spawn(["image", "rm", planted]);
                }
            }, 300_000);
        });

        test("the stand-in bases are labelled as stand-ins, naming what they were built from", () => {
            const refs = bases.map((b) => b.ref);
            expect(refs).toEqual(
                expect.arrayContaining(["python:3.11.18-slim-bookworm", "apache/airflow:3.3.2-python3.11"]),
            );
            for (const b of bases) {
                const labels = inspectImage(docker, b.ref).Config.Labels ?? {};
                expect([b.ref, labels["dev.fx-ml.stand-in"]]).toEqual([b.ref, "true"]);
                expect(labels["dev.fx-ml.stand-in.built-from"]).toBe(b.builtFrom);
            }
            const airflow = inspectImage(docker, "apache/airflow:3.3.2-python3.11").Config;
            expect(airflow.User).toBe("50000");
            expect(airflow.Entrypoint).toEqual(["/usr/bin/dumb-init", "--", "/entrypoint"]);
            expect(airflow.Env).toEqual(
                expect.arrayContaining(["AIRFLOW_HOME=/opt/airflow", "AIRFLOW_VERSION=3.3.2", "PIP_USER=true"]),
            );
        });

        test("fx-fingpt is not built on dev; its base cannot be had on these machines, and why", async () => {
            const mock = await runStack("dev");
            expect(mock.ofType("docker:index/image:Image").map((i) => i.inputs.imageName)).not.toContainEqual(
                expect.stringContaining("fx-fingpt"),
            );
            process.stdout.write(`[images] fx-fingpt: ${CUDA_UNBUILDABLE}\n`);
            expect(CUDA_UNBUILDABLE).toMatch(/nvidia\/cuda:13\.0\.2-runtime-ubuntu24\.04/);
        });
    });

    describe("pulumi destroy", () => {
        test("deletes every resource and leaves the stack empty", () => {
            expect(destroyRun.result.summary.result).toBe("succeeded");
            expect(Object.keys(destroyRun.result.summary.resourceChanges ?? {})).toEqual(["delete"]);
            expect(destroyRun.result.summary.resourceChanges!.delete).toBe(
                upRun.result.summary.resourceChanges!.create,
            );
            expect(stackResourcesAfterDestroy).toBe(0);
        });

        test("leaves nothing in the API server but the CRDs the charts keep on purpose, with no instance of them", () => {
            const unexpected = left.filter((o) => !keptOnPurpose(o, left)).map(objectKey);
            if (unexpected.length > 0) throw new Error(`left behind:\n${unexpected.join("\n")}\n${diagnostics()}`);
            // The namespaces the stack owned are gone (not Terminating), and so is everything in them.
            for (const ns of created.filter((o) => o.kind === "Namespace"))
                expect(
                    left.filter((o) => o.metadata.namespace === ns.metadata.name || objectKey(o) === objectKey(ns)),
                ).toEqual([]);
            const groups = ["cert-manager.io", "acme.cert-manager.io", "postgresql.cnpg.io"];
            expect(left.filter((o) => !groups.includes(o.spec.group)).map(objectKey)).toEqual([]);
        });
    });

    describe("a Dockerfile that cannot build", () => {
        test("fails the up, naming the image and the step that failed, with the build's own error", async () => {
            const dir = fs.mkdtempSync(path.join(home, "broken-"));
            fs.mkdirSync(path.join(dir, "context"));
            fs.writeFileSync(path.join(dir, "context", "present.txt"), "here\n");
            fs.writeFileSync(
                path.join(dir, "Dockerfile.broken"),
                `FROM ${PYTHON_REF}\nCOPY present.txt /opt/present.txt\nCOPY missing/requirements.txt /opt/req.txt\n`,
            );
            const pulumiHome = path.join(home, "pulumi-home");
            const ws = await LocalWorkspace.createOrSelectStack(
                {
                    stackName: "broken",
                    projectName: "fx-images-broken",
                    program: async () => {
                        const dockerSdk = await import("@pulumi/docker");
                        new dockerSdk.Image("broken", {
                            imageName: "localhost:5001/fx-broken:test",
                            build: {
                                context: path.join(dir, "context"),
                                dockerfile: path.join(dir, "Dockerfile.broken"),
                                platform: "linux/amd64",
                            },
                            skipPush: false,
                        });
                    },
                },
                {
                    workDir: dir,
                    envVars: {
                        ...offlineEngineEnv(pulumiHome, "images-broken"),
                        PULUMI_BACKEND_URL: `file://${fs.mkdtempSync(path.join(home, "state-broken-"))}`,
                        DOCKER_HOST: docker.host,
                    },
                },
            );
            const lines: string[] = [];
            await expect(ws.up({ color: "never", onOutput: (s) => lines.push(s) })).rejects.toThrow();
            const text = lines.join("");
            expect(text).toContain("docker build of localhost:5001/fx-broken:test failed at step");
            expect(text).toMatch(/step \[\d\/3\] COPY missing\/requirements\.txt \/opt\/req\.txt/);
            expect(text).toMatch(/missing\/requirements\.txt.*not found/);
        }, 600_000);
    });

    describe("teardown", () => {
        test("prunes what this build no longer references, then stops the registry and the engine, leaving nothing behind", async () => {
            await server.stop();
            if (registry.started) {
                const keep = built.map((b) => b.imageName.replace(/^[^/]+\//, ""));
                const removed = await pruneRegistry(registry.address, keep, "fx-");
                process.stdout.write(`[images] registry: ${removed.length} manifests no longer referenced deleted\n`);
            }
            if (docker.started) {
                const keep = [...built.map((b) => b.imageName), ...bases.map((b) => b.ref)];
                const prefixes = ["localhost:5001/fx-", "fx-ml-standin/", "python:", "apache/airflow:"];
                const removed = pruneImages(docker, keep, prefixes);
                process.stdout.write(`[images] engine: ${removed.length} images no longer referenced removed\n`);
            }
            await registry.stop();
            await docker.stop();
            if (!docker.started) return; // an engine of the caller's: not ours to check
            // Processes, mounts and the exec root are ours alone: none may be left. Docker's iptables chains and
            // bridge are the host's as they were before the engine started (another engine's are not ours).
            if (hostBefore.iptables || hostBefore.bridge)
                process.stdout.write(
                    `[images] Docker networking there before the engine started (kept): ${hostBefore.bridge}\n${hostBefore.iptables}\n`,
                );
            expect(dockerHostTrace()).toEqual({
                processes: "",
                mounts: "",
                iptables: hostBefore.iptables,
                bridge: hostBefore.bridge,
                execRoot: false,
            });
        }, 600_000);
    });
});
