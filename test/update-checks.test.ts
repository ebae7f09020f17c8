/** The create-order check of the up tiers (tools/update-checks.ts), on planted event sequences. */
import { EngineEvent } from "@pulumi/pulumi/automation";
import { KubeObject } from "../tools/kube-apply";
import { orderViolations, stepsOf } from "../tools/update-checks";

describe("the order check itself", () => {
    test("reports a custom resource whose step began before its CRD's step was done", () => {
        const crd: KubeObject = {
            apiVersion: "apiextensions.k8s.io/v1",
            kind: "CustomResourceDefinition",
            metadata: {
                name: "issuers.example.io",
                annotations: { "meta.helm.sh/release-name": "op", "meta.helm.sh/release-namespace": "ops" },
            },
            spec: { group: "example.io", names: { kind: "Issuer" } },
        };
        const issuer: KubeObject = { apiVersion: "example.io/v1", kind: "Issuer", metadata: { name: "mine" } };
        const urn = (type: string, name: string) => `urn:pulumi:dev::fx-ml-pipeline::${type}::${name}`;
        const event = (sequence: number, e: Partial<EngineEvent>) => ({ sequence, timestamp: 0, ...e }) as EngineEvent;
        const events = [
            event(1, {
                resourcePreEvent: {
                    metadata: { urn: urn("kubernetes:helm.sh/v3:Release", "op"), op: "create" } as any,
                },
            }),
            event(2, {
                resourcePreEvent: {
                    metadata: { urn: urn("kubernetes:example.io/v1:Issuer", "mine"), op: "create" } as any,
                },
            }),
            event(3, {
                resOutputsEvent: {
                    metadata: { urn: urn("kubernetes:example.io/v1:Issuer", "mine"), new: { outputs: issuer } } as any,
                },
            }),
            event(4, {
                resOutputsEvent: {
                    metadata: {
                        urn: urn("kubernetes:helm.sh/v3:Release", "op"),
                        new: { outputs: { name: "op", namespace: "ops" } },
                    } as any,
                },
            }),
        ];
        expect(orderViolations([crd, issuer], stepsOf(events))).toEqual([
            "example.io/v1 Issuer mine (step mine, began at event #2) was created before its CRD issuers.example.io (step op, done at event #4)",
        ]);
        // In the right order, nothing to report.
        const fixed = [events[0], events[3], events[1], events[2]].map((e, i) => ({ ...e, sequence: i + 1 }));
        expect(orderViolations([crd, issuer], stepsOf(fixed))).toEqual([]);
    });
});
