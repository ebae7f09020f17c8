import { findPlaintext, runStack, StackRun } from "./harness";

/** Every sentinel found outside a Pulumi secret, in any resource input or stack output, as "where: path". */
export function leaks(run: StackRun): string[] {
    const found: string[] = [];
    for (const r of run.resources) {
        for (const p of findPlaintext(r.inputs, run.sentinels)) found.push(`${r.type} ${r.name}: ${p}`);
    }
    for (const [k, o] of Object.entries(run.outputs)) {
        if (o.secret) continue;
        for (const p of findPlaintext(o.value, run.sentinels)) found.push(`stack output ${k}: ${p}`);
    }
    return found;
}

describe("no secret value outside a Pulumi secret", () => {
    test.each(["dev", "gpu"] as const)("%s stack: every sentinel stays inside a secret", async (stack) => {
        const run = await runStack(stack);
        // The sentinels reached the program: configured secrets and generated passwords/keys.
        expect(run.sentinels.length).toBeGreaterThanOrEqual(8);
        expect(leaks(run)).toEqual([]);
    });

    test("the leak check reports a sentinel put in plain text", () => {
        const secretWrapped = {
            "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
            value: "SENTINEL-x",
        };
        expect(findPlaintext({ data: { a: secretWrapped } }, ["SENTINEL-x"])).toEqual([]);
        expect(findPlaintext({ data: { a: "token=SENTINEL-x" } }, ["SENTINEL-x"])).toEqual(["$.data.a"]);
    });
});
