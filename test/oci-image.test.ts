import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { writeOciArchive } from "../tools/oci-image";

/**
 * The node tier's stand-in images (tools/oci-image.ts): an OCI archive containerd's import names by its reference,
 * holding the program at its path and mode, the same bytes for the same input (the tier itself imports and runs them).
 */
describe("writeOciArchive", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "fx-oci-test-"));
    afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
    const program = path.join(work, "hello");
    fs.writeFileSync(program, "#!/bin/true\n");
    const spec = {
        ref: "localhost/fx-node/hello:stand-in",
        files: [{ src: program, dest: "/bin/hello", mode: 0o755 }],
        entrypoint: ["/bin/hello"],
        user: "65532:65532",
        labels: { "org.opencontainers.image.description": "STAND-IN for the test" },
    };
    const sha256 = (b: Buffer) => crypto.createHash("sha256").update(b).digest("hex");

    test("an OCI layout whose index names the reference and whose blobs are what their digests say", () => {
        const archive = path.join(work, "a.tar");
        const digest = writeOciArchive(spec, archive);
        const out = fs.mkdtempSync(path.join(work, "x-"));
        execFileSync("tar", ["-xf", archive, "-C", out]);
        expect(JSON.parse(fs.readFileSync(path.join(out, "oci-layout"), "utf8"))).toEqual({
            imageLayoutVersion: "1.0.0",
        });
        const index = JSON.parse(fs.readFileSync(path.join(out, "index.json"), "utf8"));
        expect(index.manifests).toHaveLength(1);
        expect(index.manifests[0].digest).toBe(digest);
        expect(index.manifests[0].annotations).toEqual({
            "io.containerd.image.name": "localhost/fx-node/hello:stand-in",
            "org.opencontainers.image.ref.name": "stand-in",
        });
        const blob = (d: string) => fs.readFileSync(path.join(out, "blobs", "sha256", d.replace("sha256:", "")));
        for (const name of fs.readdirSync(path.join(out, "blobs", "sha256"))) {
            expect(sha256(blob(name))).toBe(name);
        }
        const manifest = JSON.parse(blob(digest).toString());
        const config = JSON.parse(blob(manifest.config.digest).toString());
        expect(config.config).toEqual({
            Entrypoint: ["/bin/hello"],
            User: "65532:65532",
            Labels: { "org.opencontainers.image.description": "STAND-IN for the test" },
        });
        expect(config.rootfs.diff_ids).toEqual([manifest.layers[0].digest]);
        // The layer: the program at its path with its mode, owned by root, and a /tmp anyone may write
        const listing = execFileSync("tar", ["-tvf", "-"], { input: blob(manifest.layers[0].digest) }).toString();
        expect(listing).toMatch(/^-rwxr-xr-x 0\/0 +12 1970-01-01 00:00 \.\/bin\/hello$/m);
        expect(listing).toMatch(/^drwxrwxrwt 0\/0 +0 1970-01-01 00:00 \.\/tmp\/$/m);
    });

    test("the same input gives the same digest; another program another", () => {
        const first = writeOciArchive(spec, path.join(work, "b.tar"));
        expect(writeOciArchive(spec, path.join(work, "c.tar"))).toBe(first);
        fs.writeFileSync(program, "#!/bin/false\n");
        expect(writeOciArchive(spec, path.join(work, "d.tar"))).not.toBe(first);
    });
});
