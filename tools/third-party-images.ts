/**
 * Every image reference a stack's pods can run that the program does not build: each `image` (containers, init
 * containers, and any other field of that name) and each CloudNativePG `imageName` in the objects the program declares
 * and in its Helm releases as `helm template` renders them. docs/airgap.md lists them for users who mirror them
 * (test/airgap.test.ts holds the two together).
 */
import { K8sObject } from "./render-lib";

function walk(value: unknown, found: Set<string>): void {
    if (Array.isArray(value)) {
        for (const v of value) walk(v, found);
        return;
    }
    if (value && typeof value === "object") {
        for (const [key, v] of Object.entries(value)) {
            if ((key === "image" || key === "imageName") && typeof v === "string" && v.includes(":")) found.add(v);
            else walk(v, found);
        }
    }
}

/** The images the objects name, less those under `ownRegistry` (the stack's registryServer: what it builds). */
export function thirdPartyImages(objects: readonly K8sObject[], ownRegistry: string): string[] {
    const found = new Set<string>();
    for (const o of objects) if (o.kind !== "CustomResourceDefinition") walk(o, found);
    return [...found].filter((i) => !i.startsWith(`${ownRegistry}/`)).sort();
}
