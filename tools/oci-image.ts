/**
 * Writes a single-layer OCI image archive (oci-layout, index.json, blobs) that `ctr images import` loads under its
 * reference, without a Docker engine: the node tier's stand-in images (tools/cluster.ts). The layer is an
 * uncompressed tar made by GNU tar with fixed owner, mode and time, so the same files give the same digest.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface ImageFile {
    /** A file on this machine. */
    src: string;
    /** Its absolute path in the image. */
    dest: string;
    mode: number;
}

export interface ImageSpec {
    /** The reference containerd files it under, e.g. `registry.k8s.io/pause:3.10.1`. */
    ref: string;
    files: ImageFile[];
    entrypoint: string[];
    /** Numeric `uid:gid` the container runs as unless the pod says otherwise. */
    user: string;
    /** OCI annotations on the config (org.opencontainers.image.*): what it is and what it was built from. */
    labels: Record<string, string>;
}

function sha256(data: Buffer): string {
    return crypto.createHash("sha256").update(data).digest("hex");
}

/** Builds the archive at `out` and returns the image's manifest digest (`sha256:...`). */
export function writeOciArchive(spec: ImageSpec, out: string): string {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "fx-oci-"));
    try {
        const root = path.join(work, "rootfs");
        for (const f of spec.files) {
            const dest = path.join(root, f.dest);
            fs.mkdirSync(path.dirname(dest), { recursive: true });
            fs.copyFileSync(f.src, dest);
            fs.chmodSync(dest, f.mode);
        }
        // A /tmp every program may write to (mode 1777), as a distroless base has.
        fs.mkdirSync(path.join(root, "tmp"), { recursive: true });
        fs.chmodSync(path.join(root, "tmp"), 0o1777);
        const layerFile = path.join(work, "layer.tar");
        execFileSync("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", root,
            "-cf", layerFile, "."]); // prettier-ignore
        const layer = fs.readFileSync(layerFile);
        const layerDigest = `sha256:${sha256(layer)}`;
        const config = Buffer.from(
            JSON.stringify({
                architecture: "amd64",
                os: "linux",
                created: "1970-01-01T00:00:00Z",
                config: { Entrypoint: spec.entrypoint, User: spec.user, Labels: spec.labels },
                rootfs: { type: "layers", diff_ids: [layerDigest] },
                history: [{ created: "1970-01-01T00:00:00Z", created_by: "tools/oci-image.ts" }],
            }),
        );
        const manifest = Buffer.from(
            JSON.stringify({
                schemaVersion: 2,
                mediaType: "application/vnd.oci.image.manifest.v1+json",
                config: {
                    mediaType: "application/vnd.oci.image.config.v1+json",
                    digest: `sha256:${sha256(config)}`,
                    size: config.length,
                },
                layers: [
                    { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layer.length },
                ],
                annotations: spec.labels,
            }),
        );
        const manifestDigest = `sha256:${sha256(manifest)}`;
        const layout = path.join(work, "layout");
        const blobs = path.join(layout, "blobs", "sha256");
        fs.mkdirSync(blobs, { recursive: true });
        for (const blob of [layer, config, manifest]) fs.writeFileSync(path.join(blobs, sha256(blob)), blob);
        fs.writeFileSync(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
        const tag = spec.ref.slice(spec.ref.lastIndexOf(":") + 1);
        fs.writeFileSync(
            path.join(layout, "index.json"),
            JSON.stringify({
                schemaVersion: 2,
                manifests: [
                    {
                        mediaType: "application/vnd.oci.image.manifest.v1+json",
                        digest: manifestDigest,
                        size: manifest.length,
                        platform: { architecture: "amd64", os: "linux" },
                        // containerd's import names the image by the first; the OCI spec's own by the second.
                        annotations: { "io.containerd.image.name": spec.ref, "org.opencontainers.image.ref.name": tag },
                    },
                ],
            }),
        );
        execFileSync("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", layout,
            "-cf", out, "oci-layout", "index.json", "blobs"]); // prettier-ignore
        return manifestDigest;
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}
