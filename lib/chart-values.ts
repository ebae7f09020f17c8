import * as fs from "fs";
import * as path from "path";
import deepmerge from "deepmerge";
import { parse } from "yaml";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { chartArchiveName, ChartKey, ChartOrigin, ChartRef, CHARTS } from "./charts";

/**
 * Helm values in two layers: the static, reviewed values of a chart in `charts-values/<file>.yaml` (hardening,
 * resources, probes: what does not change per stack) and the values computed from stack config and other components
 * (sizes, versions, Secret names). Every Helm component builds its values with `chartValues`.
 */

/** Folder of the static values files. */
export const VALUES_DIR = path.resolve(__dirname, "..", "charts-values");

export type Values = Record<string, unknown>;

/** Plain objects merge key by key; everything else (arrays, Outputs, strings) is one value that replaces. */
function isPlainObject(v: unknown): v is Values {
    if (v === null || typeof v !== "object") return false;
    const proto = Object.getPrototypeOf(v);
    return proto === Object.prototype || proto === null;
}

/** The static values of `charts-values/<file>.yaml`; throws naming the file when it is missing or not a mapping. */
export function staticValues(file: string): Values {
    const where = path.join(VALUES_DIR, `${file}.yaml`);
    if (!fs.existsSync(where)) {
        const known = fs.existsSync(VALUES_DIR)
            ? fs
                  .readdirSync(VALUES_DIR)
                  .filter((f) => f.endsWith(".yaml"))
                  .map((f) => f.slice(0, -5))
            : [];
        throw new Error(`charts-values/${file}.yaml does not exist; values files: ${known.join(", ") || "(none)"}`);
    }
    const doc: unknown = parse(fs.readFileSync(where, "utf8"));
    if (doc === null || doc === undefined) return {};
    if (!isPlainObject(doc)) {
        throw new Error(`charts-values/${file}.yaml must hold a YAML mapping of chart values, found ${typeof doc}`);
    }
    return doc;
}

/**
 * `charts-values/<file>.yaml` deep-merged with `computed` (computed wins). Nested objects merge key by key; a list
 * replaces the static list whole (merging lists item by item would splice two configurations together), and
 * Pulumi Outputs are kept as they are, so Secret names and other outputs resolve when the Release is created.
 */
export function chartValues(file: string, computed: Values = {}): Values {
    return deepmerge<Values>(staticValues(file), computed, {
        isMergeableObject: isPlainObject,
        arrayMerge: (_static, computedList) => computedList,
    });
}

/**
 * Chart, version and repository of a pinned chart (lib/charts.ts), as `helm.v3.Release` takes them, from where
 * the stack's `chartRepository` says: the chart's public repository, a folder of archives, a mirror or a registry.
 */
export function chartSource(
    ref: ChartRef,
    origin: ChartOrigin,
): { chart: string; version: string; repositoryOpts?: { repo: string } } {
    switch (origin.kind) {
        case "public":
            return { chart: ref.chart, version: ref.version, repositoryOpts: { repo: ref.repo } };
        case "repository":
            return { chart: ref.chart, version: ref.version, repositoryOpts: { repo: origin.url } };
        case "oci":
            return { chart: `${origin.url}/${ref.chart}`, version: ref.version };
        case "folder":
            // A path to the archive: Helm loads a local chart before it looks at any repository.
            return { chart: path.join(origin.path, chartArchiveName(ref)), version: ref.version };
    }
}

/** What a component gives a Release besides what the registry holds (chart, version, repository, name, values file). */
export type ReleaseSettings = Omit<
    k8s.helm.v3.ReleaseArgs,
    "chart" | "version" | "repositoryOpts" | "name" | "values"
> & {
    /** Computed values, merged over the entry's values file (`chartValues`). */
    readonly values?: pulumi.Input<Values>;
};

/**
 * The stack's Helm charts from where `chartRepository` says: made once from the config in index.ts and handed to each
 * component that installs a chart. `release` is the one way a Release is made from a registry entry (lib/charts.ts).
 */
export class HelmCharts {
    constructor(readonly origin: ChartOrigin) {}

    /** Chart, version and repository of the registry's `key`, as helm.v3.Release (or a chart component) takes them. */
    source(key: ChartKey): ReturnType<typeof chartSource> {
        return chartSource(CHARTS[key], this.origin);
    }

    /** A Release of `key` under its contract name, its values file merged with `settings.values`. */
    release(
        resourceName: string,
        key: ChartKey,
        settings: ReleaseSettings,
        opts?: pulumi.CustomResourceOptions,
    ): k8s.helm.v3.Release {
        const ref: ChartRef = CHARTS[key];
        const merge = (computed: Values) => (ref.values ? chartValues(ref.values, computed) : computed);
        const computed = settings.values ?? {};
        const values = pulumi.Output.isInstance(computed) ? computed.apply(merge) : merge(computed as Values);
        return new k8s.helm.v3.Release(
            resourceName,
            { ...settings, name: ref.release, ...this.source(key), values },
            opts,
        );
    }
}
