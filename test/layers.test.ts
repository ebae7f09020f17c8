import * as fs from "fs";
import * as path from "path";
import { ROOT } from "../tools/harness";

/**
 * The program's layers, lowest first: lib (contracts and helpers), config (reads and checks stack config), components
 * (one folder per area), index.ts (the composition root). A module imports its own layer or the ones below, never one
 * above; and each component folder names its type tokens `fx:<area>:<Name>` after one area.
 */
const LAYERS = ["lib", "config", "components", "index.ts"];
const AREAS: Record<string, string> = {
    platform: "platform",
    data: "data",
    apps: "app",
    monitoring: "monitoring",
    network: "network",
};

function programFiles(dir: string): string[] {
    return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
        const rel = path.join(dir, e.name);
        if (e.isDirectory()) return programFiles(rel);
        return e.name.endsWith(".ts") ? [rel] : [];
    });
}
const FILES = [...programFiles("lib"), ...programFiles("config"), ...programFiles("components"), "index.ts"];
const layerOf = (rel: string) => LAYERS.findIndex((l) => rel === l || rel.startsWith(`${l}/`));

/** The project files a module imports (relative specifiers only), as paths from the root. */
function imports(rel: string, text = fs.readFileSync(path.join(ROOT, rel), "utf8")): string[] {
    const specs = [...text.matchAll(/(?:from|require\()\s*"(\.[^"]+)"/g)].map((m) => m[1]);
    return specs.map((s) => path.relative(ROOT, path.resolve(ROOT, path.dirname(rel), s)));
}

describe("layers", () => {
    test("the scan sees every layer, and an import up the layers is named", () => {
        expect(FILES).toEqual(expect.arrayContaining(["lib/contracts.ts", "config/validate.ts", "index.ts"]));
        expect(FILES.some((f) => f.startsWith("components/platform/"))).toBe(true);
        const bad = 'import { ClusterTarget } from "../components/platform/cluster";';
        expect(imports("config/index.ts", bad).map(layerOf)).toEqual([layerOf("components/platform/cluster")]);
        expect(layerOf("components/platform/cluster")).toBeGreaterThan(layerOf("config/index.ts"));
    });

    test.each(FILES)("%s imports nothing from a layer above it", (rel) => {
        const above = imports(rel).filter((target) => layerOf(target) > layerOf(rel));
        expect(above).toEqual([]);
    });

    test.each(FILES.filter((f) => f.startsWith("components/")))("%s names its type tokens after its folder", (rel) => {
        const area = AREAS[rel.split("/")[1]];
        const tokens = [...fs.readFileSync(path.join(ROOT, rel), "utf8").matchAll(/super\("fx:([a-z]+):/g)].map(
            (m) => m[1],
        );
        expect(tokens.filter((t) => t !== area)).toEqual([]);
    });
});
