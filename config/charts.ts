import * as fs from "fs";
import * as path from "path";
import { chartArchiveName, CHARTS, ChartOrigin } from "../lib/charts";
import { Check } from "./check";
import { PROJECT_ROOT } from "./declared";

/** The optional charts, and whether this stack installs each. */
export interface ChartUses {
    readonly gpu: boolean;
    readonly certManager: boolean;
    readonly backups: boolean;
    readonly keda: boolean;
}

/**
 * `chartRepository`: empty -> public repositories; https:// -> a mirror; oci:// -> a registry; anything else is a
 * folder that must hold the archive of every chart this stack installs (`<chart>-<version>.tgz`, as `helm package`
 * names them), checked now so a missing one is named before anything is created.
 */
export function chartOrigin(c: Check, uses: ChartUses): ChartOrigin | undefined {
    const value = c.str("chartRepository");
    if (value === undefined) return undefined;
    if (value === "") return { kind: "public" };
    if (/^https:\/\/\S+$/.test(value)) return { kind: "repository", url: value.replace(/\/+$/, "") };
    if (/^oci:\/\/\S+$/.test(value)) return { kind: "oci", url: value.replace(/\/+$/, "") };
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
        c.fail("chartRepository", value, "must be empty, an https:// or oci:// URL, or a folder of chart archives");
        return undefined;
    }
    // Relative to the project, as Pulumi.yaml says (the same whatever the working directory).
    const folder = path.resolve(PROJECT_ROOT, value);
    if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
        c.fail("chartRepository", value, `the folder ${folder} does not exist`);
        return undefined;
    }
    const optional: Partial<Record<keyof typeof CHARTS, boolean>> = {
        nvidiaDevicePlugin: uses.gpu,
        certManager: uses.certManager,
        barmanCloud: uses.backups,
        keda: uses.keda,
    };
    const needed = Object.entries(CHARTS)
        .filter(([key]) => optional[key as keyof typeof CHARTS] !== false)
        .map(([, ref]) => chartArchiveName(ref));
    const missing = needed.filter((f) => !fs.existsSync(path.join(folder, f)));
    if (missing.length > 0) {
        c.fail("chartRepository", value, `the folder lacks the pinned chart archives ${missing.join(", ")}`);
        return undefined;
    }
    return { kind: "folder", path: folder };
}
