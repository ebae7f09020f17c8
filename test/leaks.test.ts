import { findPlaintext, runStack, StackRun } from "../tools/harness";

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

    test("a secret put in a ConfigMap on purpose makes the check fail, naming the resource and path", async () => {
        // The whole program plus a deliberate mistake: pulumi.unsecret() strips the marking Pulumi otherwise carries
        // through apply()/interpolate, which is how a password ends up in a ConfigMap in plain text.
        const run = await runStack("dev", {
            program: () => {
                const program = require("../index");
                const pulumi = require("@pulumi/pulumi");
                const k8s = require("@pulumi/kubernetes");
                const random = require("@pulumi/random");
                const generated = new random.RandomPassword("leak-probe", { length: 16, special: false }).result;
                const configured = new pulumi.Config().requireSecret("oandaToken");
                const configMap = (name: string, data: Record<string, unknown>) =>
                    new k8s.core.v1.ConfigMap(name, { metadata: { namespace: "fx-ml" }, data });
                configMap("leaky", {
                    "broker-url": pulumi.interpolate`redis://:${pulumi.unsecret(generated)}@fx-redis:6379/1`,
                    token: pulumi.unsecret(configured),
                    harmless: "INSTRUMENTS=USD_SGD",
                });
                // The same values left secret are not leaks: the check must not cry wolf.
                configMap("still-secret", {
                    "broker-url": pulumi.interpolate`redis://:${generated}@fx-redis:6379/1`,
                    token: configured,
                });
                return program;
            },
        });
        expect(leaks(run).sort()).toEqual([
            "kubernetes:core/v1:ConfigMap leaky: $.data.broker-url",
            "kubernetes:core/v1:ConfigMap leaky: $.data.token",
        ]);
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
