/** Jest globalTeardown: removes the runs test/record-runs.ts recorded for this test run. */
import * as fs from "fs";
import { RECORDED_RUNS_ENV } from "../tools/harness";

export default async function removeRecordedRuns(): Promise<void> {
    const dir = process.env[RECORDED_RUNS_ENV];
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
