/**
 * The fx-ml-pipeline CrossGuard policies, in a module of their own so tests can call `validateResource` directly:
 * `new PolicyPack()` (policy/index.ts) starts a gRPC server.
 *
 * Every policy reads Kubernetes objects as the program declares them. Objects a Helm release renders are invisible to
 * CrossGuard (the release is one resource); the charts' values are reviewed in their components instead.
 * Stack-specific settings (the registry, the allow-list, LoadBalancer and retention switches) are policy config:
 * `pulumi preview --policy-pack policy --policy-pack-config policy/config/<stack>.json`.
 */
import { ResourceValidationPolicy } from "@pulumi/policy";
// Plain-JSON Kubernetes shapes (types only): CrossGuard hands policies unwrapped objects, not Pulumi inputs.
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IToleration } from "kubernetes-models/v1/Toleration";
import { containersOf, forPods, LONG_RUNNING } from "./pods";

// ---------------------------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------------------------

export interface ImageRef {
    /** Registry host, `docker.io` for Docker Hub short names. */
    registry: string;
    /** Repository path under the registry (`library/redis` for `redis`). */
    repository: string;
    tag?: string;
    digest?: string;
}

/** Splits an image reference the way the container runtime resolves it. */
export function parseImage(image: string): ImageRef {
    const [nameAndTag, digest] = image.split("@", 2);
    const lastSlash = nameAndTag.lastIndexOf("/");
    const colon = nameAndTag.lastIndexOf(":");
    const tag = colon > lastSlash ? nameAndTag.slice(colon + 1) : undefined;
    const name = colon > lastSlash ? nameAndTag.slice(0, colon) : nameAndTag;
    const first = name.split("/")[0];
    const hasRegistry = name.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
    const registry = hasRegistry ? first : "docker.io";
    let repository = hasRegistry ? name.slice(first.length + 1) : name;
    if (registry === "docker.io" && !repository.includes("/")) repository = `library/${repository}`;
    return { registry, repository, tag, digest };
}

/** `registry/repository`, the form allow-list prefixes are matched against. */
export function canonicalName(ref: ImageRef): string {
    return `${ref.registry}/${ref.repository}`;
}

export const noLatestImages: ResourceValidationPolicy = {
    name: "no-latest-or-untagged-image",
    description: "Every container image is pinned: a digest, or a tag other than `latest`.",
    enforcementLevel: "mandatory",
    validateResource: forPods((pod) =>
        containersOf(pod).flatMap(({ label, spec }) => {
            const ref = parseImage(String(spec.image ?? ""));
            if (!spec.image) return [`${label} has no image.`];
            if (ref.digest) return [];
            if (!ref.tag) return [`${label} image '${spec.image}' has no tag: pin a version tag or a digest.`];
            if (ref.tag === "latest")
                return [`${label} image '${spec.image}' uses ':latest': pin a version tag or a digest.`];
            return [];
        }),
    ),
};

export interface RegistryConfig {
    /** The stack's registry (Pulumi config `registryServer`), where the seven fx images are pushed. */
    registry: string;
    /** Other allowed image prefixes (`docker.io/library/redis`, `quay.io/prometheus`), matched at a `/` boundary. */
    allowList: string[];
}

const REGISTRY_DEFAULTS: RegistryConfig = { registry: "localhost:5001", allowList: [] };

export const allowedRegistries: ResourceValidationPolicy = {
    name: "images-from-allowed-registries",
    description: "Every container image comes from the stack's registry or an allow-listed repository prefix.",
    enforcementLevel: "mandatory",
    configSchema: {
        properties: {
            registry: { type: "string", default: "localhost:5001" },
            allowList: { type: "array", items: { type: "string" }, default: [] },
        },
    },
    validateResource: forPods((pod, args) => {
        const cfg: RegistryConfig = { ...REGISTRY_DEFAULTS, ...args.getConfig<Partial<RegistryConfig>>() };
        const allowed = [cfg.registry, ...cfg.allowList].map((p) => canonicalPrefix(p));
        return containersOf(pod).flatMap(({ label, spec }) => {
            if (!spec.image) return [];
            const name = canonicalName(parseImage(String(spec.image)));
            const ok = allowed.some((p) => name === p || name.startsWith(`${p}/`));
            return ok
                ? []
                : [
                      `${label} image '${spec.image}' is not from the stack's registry '${cfg.registry}' or the allow-list [${cfg.allowList.join(", ")}].`,
                  ];
        });
    }),
};

/** An allow-list prefix in canonical form (`redis` -> `docker.io/library/redis`, `ghcr.io/org` stays). */
function canonicalPrefix(prefix: string): string {
    const p = prefix.replace(/\/+$/, "");
    const first = p.split("/")[0];
    const hasRegistry = first.includes(".") || first.includes(":") || first === "localhost";
    if (hasRegistry) return p;
    return p.includes("/") ? `docker.io/${p}` : `docker.io/library/${p}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Resources and probes
// ---------------------------------------------------------------------------------------------------------------

export const requestsAndLimits: ResourceValidationPolicy = {
    name: "requests-and-limits",
    description: "Every container sets CPU and memory requests and limits.",
    enforcementLevel: "mandatory",
    validateResource: forPods((pod) =>
        containersOf(pod)
            .filter((c) => !c.label.startsWith("ephemeralContainer"))
            .flatMap(({ label, spec }) => {
                const missing = (["requests", "limits"] as const).flatMap((kind) =>
                    ["cpu", "memory"].filter((r) => !spec.resources?.[kind]?.[r]).map((r) => `${kind}.${r}`),
                );
                return missing.length ? [`${label} has no ${missing.join(", ")}.`] : [];
            }),
    ),
};

export const probes: ResourceValidationPolicy = {
    name: "probes-on-long-running-containers",
    description:
        "Every long-running container (Deployments, StatefulSets, DaemonSets, sidecars) has a liveness probe, and a readiness probe when it serves a port.",
    enforcementLevel: "mandatory",
    validateResource: forPods((pod, args) => {
        if (!LONG_RUNNING.includes(args.type)) return [];
        return containersOf(pod)
            .filter((c) => c.longRunning)
            .flatMap(({ label, spec }) => {
                const out: string[] = [];
                if (!spec.livenessProbe) out.push(`${label} has no livenessProbe.`);
                if ((spec.ports ?? []).length > 0 && !spec.readinessProbe) {
                    out.push(`${label} serves port(s) but has no readinessProbe.`);
                }
                return out;
            });
    }),
};

// ---------------------------------------------------------------------------------------------------------------
// Pod Security: the `restricted` profile
// ---------------------------------------------------------------------------------------------------------------

/** Volume types `restricted` allows (https://kubernetes.io/docs/concepts/security/pod-security-standards/). */
const RESTRICTED_VOLUMES = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/** Every way a pod spec falls short of the `restricted` Pod Security Standard, one message each. */
export function restrictedViolations(pod: IPodSpec): string[] {
    const out: string[] = [];
    const psc = pod.securityContext ?? {};
    for (const host of ["hostNetwork", "hostPID", "hostIPC"] as const) {
        if (pod[host] === true) out.push(`pod sets ${host}: true.`);
    }
    for (const v of pod.volumes ?? []) {
        const kind = Object.keys(v).find((k) => k !== "name");
        if (kind && !RESTRICTED_VOLUMES.includes(kind)) out.push(`volume ${v.name} is of type ${kind}.`);
    }
    const seccompOk = (t?: string) => t === "RuntimeDefault" || t === "Localhost";
    if (psc.runAsUser === 0) out.push("pod runs as user 0 (root).");
    if (psc.seccompProfile?.type !== undefined && !seccompOk(psc.seccompProfile.type)) {
        out.push(`pod seccompProfile is ${psc.seccompProfile.type}.`);
    }
    for (const { label, spec } of containersOf(pod)) {
        const sc = spec.securityContext ?? {};
        if (sc.privileged === true) out.push(`${label} is privileged.`);
        if (sc.allowPrivilegeEscalation !== false) out.push(`${label} does not set allowPrivilegeEscalation: false.`);
        const runAsNonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
        if (runAsNonRoot !== true) out.push(`${label} does not set runAsNonRoot: true (container or pod).`);
        if (sc.runAsUser === 0) out.push(`${label} runs as user 0 (root).`);
        const drop: string[] = sc.capabilities?.drop ?? [];
        if (!drop.includes("ALL")) out.push(`${label} does not drop ALL capabilities.`);
        const added = ((sc.capabilities?.add ?? []) as string[]).filter((c) => c !== "NET_BIND_SERVICE");
        if (added.length) out.push(`${label} adds capabilities ${added.join(", ")}.`);
        const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
        if (!seccompOk(seccomp)) out.push(`${label} has no RuntimeDefault seccompProfile (container or pod).`);
        for (const p of spec.ports ?? []) {
            if (p.hostPort) out.push(`${label} binds hostPort ${p.hostPort}.`);
        }
    }
    return out;
}

export const podSecurityRestricted: ResourceValidationPolicy = {
    name: "pod-security-restricted",
    description:
        "Every pod meets the restricted Pod Security Standard: runAsNonRoot, no privilege escalation, drop ALL, seccomp RuntimeDefault, no privileged, host namespaces, hostPath or hostPort.",
    enforcementLevel: "mandatory",
    validateResource: forPods((pod) => restrictedViolations(pod)),
};

// ---------------------------------------------------------------------------------------------------------------
// Secrets in env
// ---------------------------------------------------------------------------------------------------------------

/** Env var names that hold credentials; `_FILE`/`_PATH`/`_CMD` variants point at one and may be literal. */
export const SECRET_ENV_NAME = /TOKEN|PASSWORD|PASSWD|SECRET|KEY/i;
const REFERENCE_SUFFIX = /_(FILE|PATH|CMD)$/i;

export const noSecretLiteralInEnv: ResourceValidationPolicy = {
    name: "no-secret-literal-in-env",
    description:
        "An env var named like a credential (TOKEN, PASSWORD, SECRET, KEY) takes its value from a Secret (valueFrom.secretKeyRef), never a literal `value`.",
    enforcementLevel: "mandatory",
    validateResource: forPods((pod) =>
        containersOf(pod).flatMap(({ label, spec }) =>
            (spec.env ?? [])
                .filter((e) => SECRET_ENV_NAME.test(e.name) && !REFERENCE_SUFFIX.test(e.name))
                .filter((e) => e.value !== undefined && e.value !== "")
                .map((e) => `${label} env ${e.name} is a literal value: use valueFrom.secretKeyRef.`),
        ),
    ),
};

// ---------------------------------------------------------------------------------------------------------------
// Services, GPUs, Helm, data
// ---------------------------------------------------------------------------------------------------------------

export const noLoadBalancer: ResourceValidationPolicy = {
    name: "no-loadbalancer-service",
    description: "No Service of type LoadBalancer unless the stack allows it: traffic enters through the Ingress.",
    enforcementLevel: "mandatory",
    configSchema: { properties: { allowLoadBalancer: { type: "boolean", default: false } } },
    validateResource: (args, report) => {
        if (args.type !== "kubernetes:core/v1:Service" || args.props.spec?.type !== "LoadBalancer") return;
        if (args.getConfig<{ allowLoadBalancer?: boolean }>().allowLoadBalancer === true) return;
        report(
            `Service ${args.props.metadata?.name ?? args.name} is of type LoadBalancer; expose it through an Ingress, or set allowLoadBalancer in the policy config.`,
        );
    },
};

export interface GpuConfig {
    /** The extended resource of a GPU. */
    gpuResource: string;
    /** The taint key of the GPU pool. */
    taintKey: string;
}

/** True when one of the tolerations lets a pod onto nodes tainted `<key>[=...]:NoSchedule`. */
export function toleratesTaint(tolerations: readonly IToleration[], key: string): boolean {
    return tolerations.some((t) => {
        const keyMatches =
            t.operator === "Exists" ? t.key === undefined || t.key === "" || t.key === key : t.key === key;
        const effectMatches = !t.effect || t.effect === "NoSchedule";
        return keyMatches && effectMatches;
    });
}

const GPU_DEFAULTS: GpuConfig = { gpuResource: "nvidia.com/gpu", taintKey: "nvidia.com/gpu" };

export const gpuTolerations: ResourceValidationPolicy = {
    name: "gpu-pods-tolerate-gpu-taint",
    description: "A pod requests GPUs only if it tolerates the GPU pool's taint (otherwise it stays Pending).",
    enforcementLevel: "mandatory",
    configSchema: {
        properties: {
            gpuResource: { type: "string", default: "nvidia.com/gpu" },
            taintKey: { type: "string", default: "nvidia.com/gpu" },
        },
    },
    validateResource: forPods((pod, args) => {
        const cfg: GpuConfig = { ...GPU_DEFAULTS, ...args.getConfig<Partial<GpuConfig>>() };
        const gpuContainers = containersOf(pod).filter(
            ({ spec }) => spec.resources?.limits?.[cfg.gpuResource] || spec.resources?.requests?.[cfg.gpuResource],
        );
        if (gpuContainers.length === 0 || toleratesTaint(pod.tolerations ?? [], cfg.taintKey)) return [];
        return gpuContainers.map(
            ({ label }) =>
                `${label} requests ${cfg.gpuResource} but the pod does not tolerate the '${cfg.taintKey}:NoSchedule' taint.`,
        );
    }),
};

export const helmPinned: ResourceValidationPolicy = {
    name: "helm-chart-version-pinned",
    description: "Every Helm release pins its chart version (lib/charts.ts).",
    enforcementLevel: "mandatory",
    validateResource: (args, report) => {
        if (args.type !== "kubernetes:helm.sh/v3:Release") return;
        if (!args.props.version) report(`Helm release ${args.name} (chart ${args.props.chart}) has no chart version.`);
    },
};

export interface RetentionConfig {
    /** Whether data volumes must survive a `pulumi destroy` (false on dev, true elsewhere). */
    required: boolean;
    /** Charts whose releases hold a data service's volumes (CloudNativePG cluster, Redis). */
    dataCharts: string[];
}

const RETENTION_DEFAULTS: RetentionConfig = { required: true, dataCharts: ["cluster", "redis"] };

export const dataRetained: ResourceValidationPolicy = {
    name: "data-volumes-retained",
    description:
        "Outside dev, every PersistentVolumeClaim and every release of a data chart is protected (`protect: true`), so `pulumi destroy` cannot delete the data.",
    enforcementLevel: "mandatory",
    configSchema: {
        properties: {
            required: { type: "boolean", default: true },
            dataCharts: { type: "array", items: { type: "string" }, default: ["cluster", "redis"] },
        },
    },
    validateResource: (args, report) => {
        const cfg: RetentionConfig = { ...RETENTION_DEFAULTS, ...args.getConfig<Partial<RetentionConfig>>() };
        if (!cfg.required) return;
        const isPvc = args.type === "kubernetes:core/v1:PersistentVolumeClaim";
        const isDataRelease =
            args.type === "kubernetes:helm.sh/v3:Release" && cfg.dataCharts.includes(String(args.props.chart));
        if (!isPvc && !isDataRelease) return;
        // CrossGuard's resource options expose `protect` but not `retainOnDelete` (@pulumi/policy 1.21
        // PolicyResourceOptions); honour retainOnDelete too should a later analyzer pass it.
        const opts = args.opts as { protect?: boolean; retainOnDelete?: boolean };
        if (opts.protect === true || opts.retainOnDelete === true) return;
        report(
            `${isPvc ? "PersistentVolumeClaim" : `Helm release (chart ${args.props.chart})`} ${args.name} holds data but is not protected: set { protect: true } outside dev.`,
        );
    },
};

/** Every policy of the pack, in the order `pulumi preview` reports them. */
export const policies: ResourceValidationPolicy[] = [
    noLatestImages,
    allowedRegistries,
    requestsAndLimits,
    probes,
    podSecurityRestricted,
    noSecretLiteralInEnv,
    noLoadBalancer,
    gpuTolerations,
    helmPinned,
    dataRetained,
];
