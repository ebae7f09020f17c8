/**
 * Writes bench/results/images.md from what the images tier measured (never by hand): each image's size and its size
 * above its third-party (stand-in) base, the total, and the build times of the run. A run that began with an empty
 * Docker data root is "cold", any other "warm"; the file keeps the latest of each, so both stay side by side.
 */
import * as fs from "fs";
import * as path from "path";
import { DockerEngine, inspectImage } from "./docker";
import { ROOT } from "./stacks";
import { StandInBase, standInBaseOf } from "./standin-images";

export const IMAGES_FIGURES = path.join(ROOT, "bench", "results", "images.md");

export interface ImageFiguresInput {
    docker: DockerEngine;
    cold: boolean;
    bases: StandInBase[];
    images: { repository: string; imageName: string; seconds: number }[];
    upSeconds: number;
    basesSeconds: number;
    /** Bytes of file content in the images' distinct layers (each shared layer once). */
    distinctLayerBytes: number;
}

const MB = 1e6;
const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;

function section(input: ImageFiguresInput, when: string): string {
    const bases = input.bases.map((b) => {
        const info = inspectImage(input.docker, b.ref);
        return { ref: b.ref, layers: info.RootFS.Layers, size: info.Size };
    });
    const rows: string[] = [];
    let total = 0;
    for (const image of input.images) {
        const info = inspectImage(input.docker, image.imageName);
        const base = standInBaseOf(info.RootFS.Layers, bases);
        total += info.Size;
        rows.push(
            `| ${image.repository} | ${mb(info.Size)} | ${base ? mb(info.Size - base.size) : "-"} | ` +
                `${base?.ref ?? "-"} | ${image.seconds} |`,
        );
    }
    const baseRows = input.bases.map(
        (b) =>
            `| ${b.ref} | ${mb(inspectImage(input.docker, b.ref).Size)} | ${b.cached ? "cached" : `${b.seconds.toFixed(0)} s`} |`,
    );
    return [
        `### ${input.cold ? "Cold" : "Warm"} run (${when})`,
        "",
        input.cold
            ? "Empty Docker data root: stand-in bases, every layer and every pip download built from nothing."
            : "Docker data root kept from an earlier run: BuildKit reuses every layer whose inputs did not change.",
        "",
        `- stand-in bases: ${input.basesSeconds} s; \`pulumi up\` of dev (every image built and pushed, and the ` +
            `objects applied): ${input.upSeconds} s`,
        `- the six images' sizes added up: ${mb(total)}; distinct layer content (each shared layer once): ` +
            `${mb(input.distinctLayerBytes)}`,
        "",
        "| image | size | above its base | base (stand-in) | build and push in the up, s |",
        "|---|---|---|---|---|",
        ...rows,
        "",
        "| stand-in base | size | built in this run |",
        "|---|---|---|",
        ...baseRows,
        "",
    ].join("\n");
}

/** Writes this run's section, keeping the other kind's (cold or warm) from the file as it is. */
export function writeImageFigures(input: ImageFiguresInput): void {
    const when = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    const mine = section(input, when);
    const other = input.cold ? "Warm" : "Cold";
    let kept = "";
    if (fs.existsSync(IMAGES_FIGURES)) {
        const text = fs.readFileSync(IMAGES_FIGURES, "utf8");
        const m = new RegExp(`### ${other} run[\\s\\S]*?(?=\\n### |$)`).exec(text);
        if (m) kept = m[0].trimEnd() + "\n";
    }
    const sections = input.cold ? [mine, kept] : [kept, mine];
    const text = [
        "# Images: sizes and build times",
        "",
        "Written by the images tier (`npm run test:images`, test/tiers/images.test.ts) on every run; never edited by",
        'hand. Sizes are Docker\'s uncompressed image sizes; "above its base" is the image less its third-party base',
        "(a stand-in built here: tools/standin-images.ts). The seed's images were about 19.5 GB in all.",
        "",
        ...sections.filter(Boolean),
    ].join("\n");
    fs.mkdirSync(path.dirname(IMAGES_FIGURES), { recursive: true });
    fs.writeFileSync(IMAGES_FIGURES, text.trimEnd() + "\n");
}
