import { reveal, runStack } from "../tools/harness";
import { toUrlSafeBase64 } from "../components/platform/secrets";

describe("secrets", () => {
    test("the Fernet key is URL-safe base64 of 32 random bytes", async () => {
        const run = await runStack("dev");
        const bytes = run.one("random:index/randomBytes:RandomBytes", /fernet/);
        expect(bytes.inputs.length).toBe(32);
        const keys = reveal(run.one("kubernetes:core/v1:Secret", /airflow-keys/).inputs.stringData);
        expect(keys["fernet-key"]).toMatch(/^[A-Za-z0-9_-]+=*$/);
        expect(keys["fernet-key"]).toBe(toUrlSafeBase64(bytes.state.base64.value ?? bytes.state.base64));
        expect(keys["webserver-secret-key"]).toContain("SENTINEL-random-");
    });

    test("toUrlSafeBase64 maps + and / and keeps padding", () => {
        expect(toUrlSafeBase64("ab+/cd+/==")).toBe("ab-_cd-_==");
    });

    test.each(["airflow", "mlflow", "feast"])(
        "database role %s has its own basic-auth Secret and password",
        async (role) => {
            const run = await runStack("gpu");
            const s = run.one("kubernetes:core/v1:Secret", `fx-pg-${role}`);
            expect(s.inputs.type).toBe("kubernetes.io/basic-auth");
            const data = reveal(s.inputs.stringData);
            expect(data.username).toBe(role);
            expect(data.password).toBe(
                reveal(run.one("random:index/randomPassword:RandomPassword", `fx-pg-${role}`).state.result),
            );
        },
    );

    test("OANDA credentials exist only when the stack collects live candles", async () => {
        const gpu = await runStack("gpu");
        const oanda = reveal(gpu.one("kubernetes:core/v1:Secret", "fx-oanda").inputs.stringData);
        expect(oanda.token).toBe(gpu.config.oandaToken);
        const dev = await runStack("dev");
        expect(dev.ofType("kubernetes:core/v1:Secret", "fx-oanda")).toEqual([]);
    });

    test("a registry with credentials gets a dockerconfigjson pull secret; kind's registry does not", async () => {
        const gpu = await runStack("gpu");
        const pull = gpu.one("kubernetes:core/v1:Secret", "fx-registry-pull");
        expect(pull.inputs.type).toBe("kubernetes.io/dockerconfigjson");
        const cfg = JSON.parse(reveal(pull.inputs.stringData)[".dockerconfigjson"]);
        expect(Object.keys(cfg.auths)).toEqual(["ghcr.io"]);
        const dev = await runStack("dev");
        expect(dev.ofType("kubernetes:core/v1:Secret", "fx-registry-pull")).toEqual([]);
    });
});
