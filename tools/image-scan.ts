/**
 * Searches images' layers for byte strings that must not be in them (a CA certificate of this machine, a secret
 * value): one `docker save` of every image at once (shared layers are read once), each layer's tar read with
 * tar-stream and every file's content searched, so a finding names the image, the layer and the file.
 */
import { spawn } from "child_process";
import * as tar from "tar-stream";
import { DOCKER_CLI, DockerEngine } from "./docker";

export interface Needle {
    /** What it is, for the report (never the value itself: a secret stays out of test output). */
    label: string;
    bytes: Buffer;
}

export interface Finding {
    image: string;
    /** Index of the layer in the image (0 = its first). */
    layer: number;
    file: string;
    needle: string;
}

export interface ScanResult {
    findings: Finding[];
    /** Layers (per image, above the first `skip`) that were searched, and the bytes read in all. */
    layersSearched: Record<string, number>;
    bytesRead: number;
}

/** A stream that pipes into a tar extractor (Node's and tar-stream's own). */
type Pipeable = { pipe(destination: tar.Extract): unknown };

/** Needles for a PEM certificate: a line of its base64 body and a slice of its DER bytes. */
export function certificateNeedles(label: string, pem: string): Needle[] {
    const body = pem
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("-----"));
    const der = Buffer.from(body.join(""), "base64");
    const mid = Math.floor(der.length / 2);
    return [
        { label: `${label} (PEM)`, bytes: Buffer.from(body[Math.min(2, body.length - 1)]) },
        { label: `${label} (DER)`, bytes: der.subarray(mid, mid + 48) },
    ];
}

/**
 * Finds any needle in a stream: each chunk is searched where it lies, and only the seam between two chunks (the end
 * of one, the start of the next) is copied, so the content is read once and never concatenated.
 */
async function search(
    stream: AsyncIterable<unknown>,
    needles: Needle[],
): Promise<{ found: Set<string>; bytes: number }> {
    const keep = Math.max(0, ...needles.map((n) => n.bytes.length)) - 1;
    const found = new Set<string>();
    let tailOfLast = Buffer.alloc(0);
    let bytes = 0;
    for await (const data of stream) {
        const chunk = data as Buffer;
        bytes += chunk.length;
        const seam = tailOfLast.length > 0 ? Buffer.concat([tailOfLast, chunk.subarray(0, keep)]) : undefined;
        for (const n of needles) {
            if (found.has(n.label)) continue;
            if (chunk.includes(n.bytes) || seam?.includes(n.bytes)) found.add(n.label);
        }
        tailOfLast = Buffer.from(chunk.subarray(Math.max(0, chunk.length - keep)));
    }
    return { found, bytes };
}

/**
 * The needles worth searching for: distinct values only, and none that holds another needle (a connection string
 * that holds a password is found wherever the password is: searching the password alone finds it, once).
 */
export function distinctNeedles(needles: Needle[]): Needle[] {
    const unique = needles.filter((n, i) => needles.findIndex((m) => m.bytes.equals(n.bytes)) === i);
    return unique.filter(
        (n) => !unique.some((m) => m !== n && m.bytes.length < n.bytes.length && n.bytes.includes(m.bytes)),
    );
}

/** Every file of a layer tar holding a needle: [path, needle label]. */
async function searchLayer(layer: Pipeable, needles: Needle[]): Promise<{ hits: [string, string][]; bytes: number }> {
    const extract = tar.extract();
    const hits: [string, string][] = [];
    let bytes = 0;
    const done = new Promise<void>((resolve, reject) => {
        extract.on("entry", (header, stream, next) => {
            search(stream, needles)
                .then(({ found, bytes: b }) => {
                    bytes += b;
                    for (const label of found) hits.push([header.name, label]);
                    next();
                })
                .catch(reject);
        });
        extract.on("finish", resolve);
        extract.on("error", reject);
    });
    layer.pipe(extract);
    await done;
    return { hits, bytes };
}

/**
 * Searches the layers of `images` above each one's first `skip[image]` layers (its base's) for the needles. One
 * `docker save` of them all; layers are matched to images through the saved manifest.json.
 */
export async function scanImages(
    engine: DockerEngine,
    images: string[],
    skip: Record<string, number>,
    all: Needle[],
): Promise<ScanResult> {
    const needles = distinctNeedles(all);
    const save = spawn(DOCKER_CLI, ["save", ...images], {
        env: engine.env,
        stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    save.stderr.on("data", (c) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => save.on("close", resolve));
    const outer = tar.extract();
    const layerHits = new Map<string, [string, string][]>();
    let manifest: { RepoTags: string[] | null; Layers: string[] }[] = [];
    let bytesRead = 0;
    const done = new Promise<void>((resolve, reject) => {
        outer.on("entry", (header, stream, next) => {
            const fail = (e: Error) => reject(e);
            if (header.name.endsWith("/layer.tar") || /^blobs\/sha256\//.test(header.name)) {
                searchLayer(stream, needles)
                    .then(({ hits, bytes }) => {
                        bytesRead += bytes;
                        layerHits.set(header.name, hits);
                        next();
                    })
                    .catch(fail);
            } else if (header.name === "manifest.json") {
                const chunks: Buffer[] = [];
                stream.on("data", (c) => chunks.push(c as Buffer));
                stream.on("end", () => {
                    manifest = JSON.parse(Buffer.concat(chunks).toString("utf8"));
                    next();
                });
            } else {
                stream.on("end", () => next());
                stream.resume();
            }
        });
        outer.on("finish", resolve);
        outer.on("error", reject);
    });
    save.stdout.pipe(outer);
    await done;
    const code = await exited;
    if (code !== 0) throw new Error(`docker save ${images.join(" ")} exited ${code}: ${stderr}`);

    const findings: Finding[] = [];
    const layersSearched: Record<string, number> = {};
    // `docker save` of several references lists each image once, with its tags; name them by what was asked.
    for (const image of images) {
        const entry = manifest.find((m) => (m.RepoTags ?? []).includes(image)) ?? manifest[images.indexOf(image)];
        if (!entry) throw new Error(`docker save: no manifest entry for ${image}`);
        const from = skip[image] ?? 0;
        layersSearched[image] = entry.Layers.length - from;
        entry.Layers.forEach((layer, i) => {
            if (i < from) return;
            for (const [file, needle] of layerHits.get(layer) ?? []) findings.push({ image, layer: i, file, needle });
        });
    }
    return { findings, layersSearched, bytesRead };
}
