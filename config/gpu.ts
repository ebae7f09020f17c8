import { Check } from "./check";
import { LABEL_KEY, LABEL_VALUE, NFD_NVIDIA_GPU_LABEL, TAINT_EFFECTS } from "./rules";
import type { StackConfig } from "./types";
import type { Toleration } from "../lib/k8s";

/** `gpuNodeSelector`: key=value label entries. */
function parseNodeSelector(c: Check, key: string, entries: readonly string[]): Record<string, string> {
    const selector: Record<string, string> = {};
    for (const entry of entries) {
        const [k, v, ...rest] = entry.split("=");
        if (v === undefined || rest.length > 0 || !LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) {
            c.fail(key, entry, "each entry must be key=value with a valid Kubernetes label key and value");
            continue;
        }
        selector[k] = v;
    }
    return selector;
}

/** `gpuTolerations` in kubectl taint syntax: key[=value]:Effect; no value means operator Exists. */
function parseTolerations(c: Check, key: string, entries: readonly string[]): Toleration[] {
    const tolerations: Toleration[] = [];
    for (const entry of entries) {
        const m = /^([^=:]+)(=([^:]*))?:([A-Za-z]+)$/.exec(entry);
        const effect = m?.[4] as Toleration["effect"] | undefined;
        if (!m || !LABEL_KEY.test(m[1]) || !effect || !TAINT_EFFECTS.includes(effect)) {
            c.fail(key, entry, `each entry must be key[=value]:Effect with Effect one of ${TAINT_EFFECTS.join(", ")}`);
            continue;
        }
        tolerations.push(
            m[2] === undefined
                ? { key: m[1], operator: "Exists", effect }
                : { key: m[1], operator: "Equal", value: m[3], effect },
        );
    }
    return tolerations;
}

/** The GPU pool: count, where FinGPT lands, and the NVIDIA device plugin. `fingptModel`: FinGPT asks for a GPU. */
export function readGpu(c: Check, fingptModel: boolean): StackConfig["gpu"] | undefined {
    const enabled = c.bool("gpuEnabled");
    const count = c.int("gpuCount");
    let nodeSelector = parseNodeSelector(c, "gpuNodeSelector", c.strings("gpuNodeSelector") ?? []);
    const tolerations = parseTolerations(c, "gpuTolerations", c.strings("gpuTolerations") ?? []);
    const installDevicePlugin = c.bool("installDevicePlugin");
    // With the plugin, its chart's node-feature-discovery labels the GPU nodes: a fresh pool needs no hand labels.
    if (installDevicePlugin && enabled && Object.keys(nodeSelector).length === 0) {
        nodeSelector = { [NFD_NVIDIA_GPU_LABEL]: "true" };
    }
    if (fingptModel && enabled === false) {
        c.fail(
            "fingptEnabled",
            true,
            "FinGPT in model mode needs a GPU pool: set gpuEnabled=true with gpuNodeSelector/gpuTolerations, or fingptMode=lexicon, or fingptEnabled=false",
        );
    }
    if (enabled && Object.keys(nodeSelector).length === 0 && tolerations.length === 0) {
        c.fail(
            "gpuNodeSelector",
            [],
            "gpuEnabled needs the GPU pool's gpuNodeSelector or gpuTolerations, or FinGPT could land on a CPU node",
        );
    }
    if (installDevicePlugin && enabled === false) {
        c.fail("installDevicePlugin", true, "the NVIDIA device plugin needs gpuEnabled=true");
    }
    if (enabled === undefined || count === undefined || installDevicePlugin === undefined) return undefined;
    return { enabled, count, nodeSelector, tolerations, installDevicePlugin };
}
