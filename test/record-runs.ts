/**
 * Jest globalSetup: runs the program once per stack with the default options (Pulumi.<stack>.yaml, every secret a
 * sentinel) and records each run as JSON in a temporary folder named by FX_RECORDED_RUNS, which every test file then
 * reads through runStack(stack) instead of running the whole program again. Runs with options still run live.
 *
 * Each stack is recorded by its own process (`ts-node test/record-runs.ts <stack> <file>`), the two in parallel: the
 * Pulumi runtime keeps global state and outside jest there is no isolated module registry.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isDeepStrictEqual } from "util";
import { liveRun, RECORDED_RUNS_ENV, recordedRunFile, ROOT, StackName, STACKS } from "../tools/harness";

export default async function recordRuns(): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-recorded-runs-"));
    process.env[RECORDED_RUNS_ENV] = dir;
    const tsNode = require.resolve("ts-node/dist/bin.js", { paths: [ROOT] });
    // Jest skips the teardown when the setup fails: leave no folder behind then.
    const recording = Promise.all(
        STACKS.map(
            (stack) =>
                new Promise<void>((resolve, reject) =>
                    execFile(
                        process.execPath,
                        [tsNode, "--transpile-only", __filename, stack, recordedRunFile(dir, stack)],
                        { cwd: ROOT, env: { ...process.env, [RECORDED_RUNS_ENV]: "" }, maxBuffer: 64 << 20 },
                        (error, stdout, stderr) =>
                            error
                                ? reject(
                                      new Error(
                                          `recording the ${stack} run failed: ${error.message}\n${stdout}${stderr}`,
                                      ),
                                  )
                                : resolve(),
                    ),
                ),
        ),
    );
    await recording.catch((e: Error) => {
        fs.rmSync(dir, { recursive: true, force: true });
        throw e;
    });
}

/**
 * Records one stack's default run to `file`; refuses data that JSON would not carry back unchanged. When the program
 * fails, the error goes to `<file>.error` instead, and every test asking for the run fails with it (as when each test
 * ran the program itself) rather than the whole jest run stopping in its setup.
 */
async function recordOne(stack: StackName, file: string): Promise<void> {
    let data;
    try {
        data = await liveRun(stack);
    } catch (e) {
        fs.writeFileSync(`${file}.error`, (e as Error).stack ?? String(e));
        return;
    }
    const text = JSON.stringify(data);
    if (!isDeepStrictEqual(JSON.parse(text), data)) {
        throw new Error(
            `the ${stack} run holds values JSON does not carry (undefined, class instances): cannot record it`,
        );
    }
    fs.writeFileSync(file, text);
}

if (require.main === module) {
    const [stack, file] = process.argv.slice(2) as [StackName, string];
    if (!STACKS.includes(stack) || !file) {
        console.error(`usage: record-runs.ts <${STACKS.join("|")}> <file>; got ${process.argv.slice(2).join(" ")}`);
        process.exit(2);
    }
    recordOne(stack, file).catch((e: Error) => {
        console.error(e.stack ?? e.message);
        process.exit(1);
    });
}
