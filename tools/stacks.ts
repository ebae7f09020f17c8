/** The project's name, its stacks and its root folder: one definition for the tools, scripts and the test harness. */
import * as path from "path";

export const PROJECT = "fx-ml-pipeline";
export type StackName = "dev" | "gpu";
export const STACKS: readonly StackName[] = ["dev", "gpu"];
export const ROOT = path.resolve(__dirname, "..");
