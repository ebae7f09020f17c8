/**
 * STAND-IN provider plugins for the engine and images tiers (test/tiers/engine.test.ts, images.test.ts), used only because the real
 * `pulumi-resource-random`, `pulumi-resource-docker` and `pulumi-resource-kubernetes-cert-manager` plugins are served
 * by no registry these machines reach. Each does only what `pulumi preview` needs from its real counterpart, at the
 * exact version the npm SDK asks for, and says so in every resource it answers for:
 *
 * - random: check/diff/create; create generates values with node:crypto, as the real one would.
 * - docker: check/diff/create; create builds the image for real with BuildKit on the Docker engine DOCKER_HOST names
 *   and pushes it, and answers the pushed repo digest (docker-build.ts), as the real Image does; in a preview nothing
 *   is built and the digest stays unknown, exactly as the real provider leaves it with `buildOnPreview: false`.
 * - kubernetes-cert-manager: construct builds the same child the real component builds (pulumi
 *   -go-helmbase): a `kubernetes:helm.sh/v3:Release` named `<name>-helm`, chart `cert-manager` from
 *   https://charts.jetstack.io unless `helmOptions` says otherwise, values = `helmOptions.values` with the typed args
 *   merged over them; so the real Kubernetes provider previews the real chart.
 *
 * Run as `node -r ts-node/register/transpile-only provider.ts <package> <engine address>` by the wrapper scripts
 * tools/plugins.ts writes (`pulumi-resource-<package>`) and installs with `pulumi plugin install --file`.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as provider from "@pulumi/pulumi/provider";
import { buildAndPush, ImageInputs } from "./docker-build";

/** A stand-in reports the version it is installed as: the one the package's SDK asks for (tools/plugins.ts). */
type StandIn = Omit<provider.Provider, "version">;

function typeOf(urn: string): string {
    return urn.split("::")[2].split("$").pop()!;
}

/**
 * Replace-on-change for every changed input key, as the real random and docker providers do for their inputs. `olds`
 * is the resource's state: the inputs it was created from, which create() keeps, and the outputs it made (a
 * password's `result`, an image's `repoDigest`), which are not inputs and never a change.
 */
function diffAll(olds: Record<string, unknown>, news: Record<string, unknown>): provider.DiffResult {
    const inputKeys = (olds?.[INPUT_KEYS] as string[] | undefined) ?? Object.keys(olds ?? {});
    const keys = new Set([...inputKeys, ...Object.keys(news ?? {})]);
    const replaces = [...keys].filter((k) => JSON.stringify(olds?.[k]) !== JSON.stringify(news?.[k]));
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
}

/** The state key under which create() records which keys of the state were inputs. */
const INPUT_KEYS = "__standInInputKeys";

const CHARSETS = {
    lower: "abcdefghijklmnopqrstuvwxyz",
    upper: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    numeric: "0123456789",
    special: "!@#$%&*()-_=+[]{}<>:?",
};

function randomString(inputs: any): string {
    let alphabet = "";
    if (inputs.lower !== false) alphabet += CHARSETS.lower;
    if (inputs.upper !== false) alphabet += CHARSETS.upper;
    if (inputs.numeric !== false && inputs.number !== false) alphabet += CHARSETS.numeric;
    if (inputs.special !== false) alphabet += inputs.overrideSpecial ?? CHARSETS.special;
    const length = Number(inputs.length);
    if (!Number.isInteger(length) || length < 1)
        throw new Error(`random stand-in: length must be >= 1, got ${inputs.length}`);
    return Array.from({ length }, () => alphabet[crypto.randomInt(alphabet.length)]).join("");
}

/** What the random and docker stand-ins share: inputs accepted as given, replace on any change, nothing to delete. */
const customResources: Pick<provider.Provider, "check" | "diff" | "delete"> = {
    check: async (_urn, _olds, news) => ({ inputs: news }),
    diff: async (_id, _urn, olds, news) => diffAll(olds, news),
    delete: async () => undefined,
};

const random: StandIn = {
    ...customResources,
    create: async (urn, inputs) => {
        const type = typeOf(urn);
        const id = crypto.randomUUID();
        switch (type) {
            case "random:index/randomPassword:RandomPassword":
            case "random:index/randomString:RandomString":
                return {
                    id: type.endsWith("Password") ? "none" : id,
                    outs: { ...inputs, result: randomString(inputs) },
                };
            case "random:index/randomBytes:RandomBytes": {
                const bytes = crypto.randomBytes(Number(inputs.length));
                return { id, outs: { ...inputs, base64: bytes.toString("base64"), hex: bytes.toString("hex") } };
            }
            default:
                throw new Error(`random stand-in: ${type} is not stood in for`);
        }
    },
};

const docker: StandIn = {
    ...customResources,
    create: async (urn, inputs) => {
        const type = typeOf(urn);
        if (type !== "docker:index/image:Image") throw new Error(`docker stand-in: ${type} is not stood in for`);
        // A real build and push (docker-build.ts); relative paths are from the program's folder, the plugin's cwd.
        const image = inputs as ImageInputs;
        const built = await buildAndPush(image, process.cwd(), process.env);
        return {
            id: built.repoDigest,
            outs: {
                ...inputs,
                baseImageName: image.imageName,
                registryServer: built.registryServer,
                repoDigest: built.repoDigest,
                context: image.build?.context ?? "",
                dockerfile: image.build?.dockerfile ?? "",
                platform: image.build?.platform,
            },
        };
    },
};

class StandInComponent extends pulumi.ComponentResource {
    constructor(type: string, name: string, opts: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
    }
    done(outputs: pulumi.Inputs): void {
        this.registerOutputs(outputs);
    }
}

const certManager: StandIn = {
    construct: async (name, type, inputs, options) => {
        if (type !== "kubernetes-cert-manager:index:CertManager") {
            throw new Error(`kubernetes-cert-manager stand-in: ${type} is not stood in for`);
        }
        // Loaded here: only this package needs the Kubernetes SDK.
        const k8s = require("@pulumi/kubernetes") as typeof import("@pulumi/kubernetes");
        const component = new StandInComponent(type, name, options);
        const all = pulumi.output(inputs as Record<string, unknown>);
        const helmOptions = all.apply((i: any) => i.helmOptions ?? {});
        const release = new k8s.helm.v3.Release(
            `${name}-helm`,
            {
                chart: helmOptions.apply((h: any) => h.chart ?? "cert-manager"),
                version: helmOptions.apply((h: any) => h.version),
                namespace: helmOptions.apply((h: any) => h.namespace),
                name: helmOptions.apply((h: any) => h.name),
                repositoryOpts: helmOptions.apply((h: any) => ({
                    ...(h.repositoryOpts ?? {}),
                    repo: h.repositoryOpts?.repo ?? "https://charts.jetstack.io",
                })),
                skipAwait: helmOptions.apply((h: any) => h.skipAwait),
                timeout: helmOptions.apply((h: any) => h.timeout),
                values: all.apply((i: any) => {
                    const { helmOptions: h = {}, ...typed } = i;
                    return { ...(h.values ?? {}), ...typed };
                }),
            },
            { parent: component },
        );
        component.done({ status: release.status });
        return { urn: component.urn, state: { status: release.status } };
    },
};

/** create() as given, its state also naming which of its keys were inputs (for diffAll). */
function recordingInputs(p: StandIn): StandIn {
    const create = p.create!;
    return {
        ...p,
        create: async (urn, inputs) => {
            const r = await create(urn, inputs);
            return { ...r, outs: { ...r.outs, [INPUT_KEYS]: Object.keys(inputs ?? {}) } };
        },
    };
}

const PROVIDERS: Record<string, StandIn> = {
    random: recordingInputs(random),
    docker: recordingInputs(docker),
    "kubernetes-cert-manager": certManager,
};

const [pkg, version, ...rest] = process.argv.slice(2);
if (!(pkg in PROVIDERS) || !/^\d+\.\d+\.\d+$/.test(version ?? "")) {
    console.error(
        `usage: provider.ts <${Object.keys(PROVIDERS).join("|")}> <version> <engine address>; got '${pkg} ${version}'`,
    );
    process.exit(2);
}
provider.main({ ...PROVIDERS[pkg], version }, rest).catch((e: Error) => {
    console.error(e);
    process.exit(1);
});
