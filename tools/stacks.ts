/** The project's name, its stacks and its root folder: one definition for the tools, scripts and the test harness. */
import * as os from "os";
import * as path from "path";
import { CHARTS } from "../lib/charts";

export const PROJECT = "fx-ml-pipeline";
export type StackName = "dev" | "gpu";
export const STACKS: readonly StackName[] = ["dev", "gpu"];
export const ROOT = path.resolve(__dirname, "..");

/**
 * Test data beside the project, read from there and never copied into it: the pinned chart archives with their
 * index.yaml, and CRDs by release (`<chart>-<version>/`) for the schema checks and the API server tier.
 */
export const SHARED_DATA = {
    charts: path.resolve(ROOT, "..", "shared", "charts"),
    /** cert-manager's CRDs at the version the stacks install. */
    certManagerCrds: path.resolve(ROOT, "..", "shared", "crds", `cert-manager-${CHARTS.certManager.version}`),
} as const;

/** Where scripts/tools.sh links the tools it builds ($FX_TOOLS_CACHE/bin, as there). */
export const TOOLS_BIN = path.join(
    process.env.FX_TOOLS_CACHE ?? path.join(os.homedir(), ".cache", "fx-ml-tools"),
    "bin",
);
