import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Check } from "./check";
import { PROJECT_ROOT } from "./declared";
import type { ClusterTarget } from "./types";

/** The keys that name a file or folder on this machine, each checked to exist before anything is created. */

/** The default build context: the reference application in app/. */
export const REFERENCE_APP = "app";

/** `kubeContext` and `kubeconfig`: the target cluster is named, never taken from the kubeconfig's current context. */
export function readCluster(c: Check): ClusterTarget | undefined {
    const context = c.get("kubeContext");
    if (context === undefined || context.trim() === "") {
        c.fail(
            "kubeContext",
            context ?? "<unset>",
            `every stack names its cluster: pulumi config set kubeContext <context> --stack ${c.raw.stack} (kubectl config get-contexts lists them; scripts/kind-up.sh creates kind-fx-ml, scripts/minikube-up.sh fx-ml)`,
            "required",
        );
        return undefined;
    }
    if (/\s/.test(context)) {
        c.fail("kubeContext", context, "must be a kubeconfig context name, without whitespace");
        return undefined;
    }
    // A path (~ expanded) to a file that must exist; empty means the default lookup. Contents hold credentials.
    const value = c.get("kubeconfig") ?? "";
    if (value === "") return { context };
    if (/[\n\r]/.test(value) || /^\s*(apiVersion|clusters|kind)\s*:/m.test(value)) {
        c.fail("kubeconfig", "<kubeconfig contents>", "must be the path of a kubeconfig file, not its contents");
        return undefined;
    }
    const file = value === "~" || value.startsWith("~/") ? path.join(os.homedir(), value.slice(1)) : value;
    const resolved = path.resolve(PROJECT_ROOT, file);
    if (!fs.existsSync(resolved) || !fs.statSync(resolved).isFile()) {
        c.fail("kubeconfig", value, `must be the path of an existing kubeconfig file (${resolved} is not a file)`);
        return undefined;
    }
    return { context, kubeconfig: resolved };
}

/**
 * `appContext`: the build context of the images, a folder (relative to the working directory, as docker takes it)
 * with a .dockerignore, so caches, virtualenvs and local secrets stay out of the images and their content tags.
 */
export function readAppContext(c: Check): string | undefined {
    const value = c.str("appContext", { pattern: /^.+$/, hint: "must name a folder" });
    if (value === undefined) return undefined;
    const dir = path.resolve(value);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
        c.fail(
            "appContext",
            value,
            `must be the folder of the application checkout the images are built from (default: ${REFERENCE_APP}); ${dir} is not a folder`,
        );
        return undefined;
    }
    if (!fs.existsSync(path.join(dir, ".dockerignore"))) {
        c.fail(
            "appContext",
            value,
            "the build context needs a .dockerignore, so caches, virtualenvs and local secrets stay out of the images and out of their content tags",
        );
        return undefined;
    }
    return value;
}
