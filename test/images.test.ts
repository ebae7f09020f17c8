import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { contextDigest, contextFiles, IMAGE_KEYS, imageHash } from "../components/platform/images";
import { findPlaintext, reveal, ROOT, runStack, sentinelFor, StackRun } from "../tools/harness";

const IMAGE = "docker:index/image:Image";
const DIGEST_REF = /^[a-z0-9.:/-]+@sha256:[0-9a-f]{64}$/;
const DEPENDENTS = ["fastapi", "mlflow"];

type Key = (typeof IMAGE_KEYS)[number];
/** Each image's repository and Dockerfile, written down here: the test states what the component must build. */
const EXPECTED: Record<Key, { repository: string; dockerfile: string }> = {
    base: { repository: "fx-base", dockerfile: "dockerfiles/Dockerfile.base" },
    airflowScheduler: { repository: "fx-airflow-scheduler", dockerfile: "dockerfiles/Dockerfile.airflow-scheduler" },
    airflowWebserver: { repository: "fx-airflow-webserver", dockerfile: "dockerfiles/Dockerfile.airflow-webserver" },
    airflowWorker: { repository: "fx-airflow-worker", dockerfile: "dockerfiles/Dockerfile.airflow-worker" },
    fastapi: { repository: "fx-fastapi", dockerfile: "dockerfiles/Dockerfile.fastapi" },
    fingpt: { repository: "fx-fingpt", dockerfile: "dockerfiles/Dockerfile.fingpt" },
    mlflow: { repository: "fx-mlflow", dockerfile: "dockerfiles/Dockerfile.mlflow" },
};

function image(run: StackRun, key: Key) {
    return run.one(IMAGE, `fx-${EXPECTED[key].repository}`);
}

/** A copy of app/ in a temp dir, so a test can change files of the build context. */
function copyOfApp(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fx-context-"));
    fs.cpSync(path.join(ROOT, "app"), dir, { recursive: true });
    return dir;
}

/** What each stack deploys, so what it builds: dev runs no FinGPT, so no CUDA image. */
const BUILT: Record<"dev" | "gpu", readonly Key[]> = {
    dev: ["base", "airflowScheduler", "airflowWebserver", "airflowWorker", "fastapi", "mlflow"],
    gpu: ["base", "airflowScheduler", "airflowWebserver", "airflowWorker", "fastapi", "fingpt", "mlflow"],
};

describe.each([
    ["dev", "localhost:5001"],
    ["gpu", "ghcr.io/example-org/fx-ml"],
] as const)("%s stack builds the images it deploys", (stack, server) => {
    const keys = BUILT[stack];
    let run: StackRun;
    beforeAll(async () => {
        run = await runStack(stack);
    });

    test("one docker Image per deployed image's Dockerfile, with the app/ context, the config platform, and no build on preview", () => {
        const images = run.ofType(IMAGE);
        expect(images.map((r) => r.inputs.build.dockerfile).sort()).toEqual(
            keys.map((k) => EXPECTED[k].dockerfile).sort(),
        );
        for (const r of images) {
            expect(r.inputs.build).toMatchObject({
                context: "app",
                platform: "linux/amd64",
                builderVersion: "BuilderBuildKit",
            });
            expect(r.inputs.buildOnPreview).toBe(false);
            expect(r.inputs.skipPush).toBe(false);
        }
    });

    test(`each image is pushed to ${server} under a content tag`, () => {
        for (const key of keys) {
            const r = image(run, key);
            const repo = `${server}/${EXPECTED[key].repository}`;
            expect(r.inputs.imageName).toMatch(new RegExp(`^${repo.replace(/[.]/g, "\\.")}:ctx-[0-9a-f]{20}$`));
            const tag = r.inputs.imageName.split(":").pop();
            expect(r.inputs.build.args.OCI_VERSION).toBe(tag);
            expect(r.inputs.build.args.OCI_REVISION).toMatch(new RegExp(`^${tag.slice(4)}[0-9a-f]{44}$`));
        }
    });

    test("fx-base is built first and fx-fastapi/fx-mlflow get its digest as BASE_IMAGE", () => {
        const base = image(run, "base");
        for (const key of keys) {
            const r = image(run, key);
            if (DEPENDENTS.includes(key)) {
                expect(run.dependsOn(r, base)).toBe(true);
                expect(r.inputs.build.args.BASE_IMAGE).toBe(base.state.repoDigest);
                expect(r.inputs.build.args.BASE_IMAGE).toMatch(DIGEST_REF);
                expect(r.inputs.build.args.BASE_IMAGE.startsWith(`${server}/fx-base@sha256:`)).toBe(true);
            } else {
                expect(run.dependsOn(r, base)).toBe(false);
                expect(r.inputs.build.args).not.toHaveProperty("BASE_IMAGE");
            }
        }
    });

    test("the Airflow images get AIRFLOW_VERSION and fx-mlflow MLFLOW_VERSION from stack config", () => {
        for (const key of ["airflowScheduler", "airflowWebserver", "airflowWorker"] as const) {
            expect(image(run, key).inputs.build.args.AIRFLOW_VERSION).toBe(run.config.airflowVersion);
        }
        expect(image(run, "mlflow").inputs.build.args.MLFLOW_VERSION).toBe(run.config.mlflowVersion);
    });

    test("the stack exports a digest-pinned reference per image, equal to what the registry returned", () => {
        const refs = run.outputs.imageRefs.value as Record<string, string>;
        expect(Object.keys(refs).sort()).toEqual([...keys].sort());
        for (const key of keys) {
            expect(refs[key]).toBe(image(run, key).state.repoDigest);
            expect(refs[key]).toMatch(DIGEST_REF);
            expect(refs[key].startsWith(`${server}/${EXPECTED[key].repository}@sha256:`)).toBe(true);
        }
    });
});

describe("a stack builds only what it deploys", () => {
    test("the seven Dockerfiles are the seven images", () => {
        expect(
            fs
                .readdirSync(path.join(ROOT, "dockerfiles"))
                .filter((f) => f.startsWith("Dockerfile."))
                .sort(),
        ).toEqual(
            Object.values(EXPECTED)
                .map((e) => path.basename(e.dockerfile))
                .sort(),
        );
    });

    test("dev builds no CUDA image while FinGPT is off, and builds fx-fingpt once FinGPT (lexicon) is on", async () => {
        const off = await runStack("dev");
        expect(off.ofType(IMAGE, "fx-fx-fingpt")).toEqual([]);
        const on = await runStack("dev", { config: { fingptEnabled: true, fingptMode: "lexicon" } });
        const fingpt = image(on, "fingpt");
        const deployment = on.one("kubernetes:apps/v1:Deployment", "fingpt");
        expect(deployment.inputs.spec.template.spec.containers[0].image).toBe(fingpt.state.repoDigest);
    });

    test("an image built FROM fx-base brings fx-base with it", async () => {
        const run = await runStack("dev", {
            program: () => {
                const { Images } = require("../components/platform/images");
                const images = new Images("only", {
                    context: "app",
                    registry: { server: "localhost:5001" },
                    platform: "linux/amd64",
                    versions: { airflow: "3.3.2", mlflow: "3.17.2" },
                    include: ["fastapi"],
                });
                return { refs: images.refs };
            },
        });
        expect(run.ofType(IMAGE).map((r) => r.name)).toEqual(["only-fx-base", "only-fx-fastapi"]);
    });
});

describe("registry credentials", () => {
    test("dev pushes to kind's local registry without credentials", async () => {
        const run = await runStack("dev");
        for (const r of run.ofType(IMAGE)) {
            expect(r.inputs.registry).toEqual({ server: "localhost:5001" });
        }
    });

    test("gpu logs in to the registry host with the user and the password as a Pulumi secret only", async () => {
        const run = await runStack("gpu");
        const password = sentinelFor("registryPassword");
        for (const r of run.ofType(IMAGE)) {
            expect(reveal(r.inputs.registry)).toEqual({ server: "ghcr.io", username: "example-bot", password });
            // Pulumi lifts the secret to the whole registry block; either way the password never travels in clear.
            expect(findPlaintext(r.inputs, [password])).toEqual([]);
            expect(findPlaintext(reveal(r.inputs), [password])).toEqual(["$.registry.password"]);
        }
        const component = run.one("fx:platform:Images", "fx");
        expect(JSON.stringify(component.inputs)).not.toContain(password);
    });
});

describe("content tags", () => {
    test("tags are stable across runs and change only for the images whose inputs changed", async () => {
        const before = await runStack("dev");
        // The recorded run came from another process: a second run here must give the same tags.
        const again = await runStack("dev", { live: true });
        const otherAirflow = await runStack("dev", { config: { airflowVersion: "3.2.2" } });
        const tag = (run: StackRun, key: Key) => image(run, key).inputs.imageName;
        for (const key of BUILT.dev) {
            expect(tag(again, key)).toBe(tag(before, key));
            const changed = key.startsWith("airflow");
            expect(tag(otherAirflow, key) !== tag(before, key)).toBe(changed);
        }
        expect(image(otherAirflow, "airflowWorker").inputs.build.args.AIRFLOW_VERSION).toBe("3.2.2");
    });

    test("a change to a context file retags every image; an ignored file retags none", () => {
        const dir = copyOfApp();
        try {
            const original = contextDigest(dir);
            fs.mkdirSync(path.join(dir, "src", "fx_pipeline", "__pycache__"), { recursive: true });
            fs.writeFileSync(path.join(dir, "src", "fx_pipeline", "__pycache__", "x.cpython-311.pyc"), "junk");
            fs.writeFileSync(path.join(dir, "tests", "scratch_test.py"), "junk");
            expect(contextDigest(dir)).toBe(original);

            fs.appendFileSync(path.join(dir, "src", "fx_pipeline", "features.py"), "\n# changed\n");
            expect(contextDigest(dir)).not.toBe(original);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    test("the context file list honours .dockerignore as Docker does (root-anchored patterns)", () => {
        const files = contextFiles(path.join(ROOT, "app"));
        expect(files).toContain("requirements/base.txt");
        expect(files).toContain("src/fx_pipeline/features.py");
        expect(files.some((f) => f.startsWith("tests/"))).toBe(false);
        expect(files.some((f) => f.includes("__pycache__") || f.endsWith(".pyc"))).toBe(false);
        expect(files).toEqual([...files].sort());
    });

    test("the image hash covers the Dockerfile text and every build arg", () => {
        const h = imageHash("ctx", "FROM a:1.0.0", { A: "1" });
        expect(imageHash("ctx", "FROM a:1.0.0", { A: "1" })).toBe(h);
        expect(imageHash("ctx2", "FROM a:1.0.0", { A: "1" })).not.toBe(h);
        expect(imageHash("ctx", "FROM a:1.0.1", { A: "1" })).not.toBe(h);
        expect(imageHash("ctx", "FROM a:1.0.0", { A: "2" })).not.toBe(h);
        expect(imageHash("ctx", "FROM a:1.0.0", { A: "1", B: "" })).not.toBe(h);
    });
});

describe("build context", () => {
    test("another checkout as the context is passed to every image as given", async () => {
        const dir = copyOfApp();
        try {
            const run = await runStack("dev", { config: { appContext: dir } });
            for (const r of run.ofType(IMAGE)) expect(r.inputs.build.context).toBe(dir);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
