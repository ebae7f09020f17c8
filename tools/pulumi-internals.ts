/**
 * The only place the test harness reaches inside @pulumi/pulumi, beyond its public mocks API
 * (pulumi.runtime.setMocks, Mocks, MockResourceArgs). Checked against @pulumi/pulumi 3.276.0; recheck on an upgrade.
 *
 * Why each piece is needed:
 * - MockResourceArgs carries type, name, inputs, provider and custom, but not what the engine receives besides: the
 *   parent URN, the dependency URNs (explicit dependsOn and the resources behind input Outputs), protect and
 *   retainOnDelete, the providers map of a component and the additional secret outputs. The public resource
 *   transforms see options as objects, not the URNs the engine gets, and miss the dependencies that come from inputs.
 *   So registerResource of the mock monitor (runtime/mocks MockMonitor) is wrapped to read them off the request.
 * - The runtime keeps its monitor, config and root stack resource in `globalThis.globalStore`; a fresh program run in
 *   the same process needs it cleared first.
 * - `waitForRPCs` (runtime/settings, @internal) drains the queue of pending registrations, so that a run has recorded
 *   every resource before it returns; the public `disconnect()` would also close the monitor.
 *
 * Each function requires the Pulumi modules when called, so inside a jest isolated module registry it patches that
 * registry's copy.
 */

/** What a registration request carries beyond MockResourceArgs. */
export interface RegistrationMeta {
    parent?: string;
    dependencies: string[];
    secretOutputs: string[];
    options: { protect: boolean; retainOnDelete: boolean };
    /** The provider reference (`<provider urn>::<id>`); "" means the default one. */
    provider: string;
    providers: Record<string, string>;
}

/** Clears the runtime's global state, before a new program run in this process. */
export function resetRuntimeStore(): void {
    delete (globalThis as any).globalStore;
}

/** Calls `onRequest` with each registration request's type, name and meta, before the mocks' newResource sees it. */
export function captureRegistrations(onRequest: (type: string, name: string, meta: RegistrationMeta) => void): void {
    const proto = require("@pulumi/pulumi/runtime/mocks").MockMonitor.prototype;
    const original = proto.__fxOriginalRegister ?? proto.registerResource;
    proto.__fxOriginalRegister = original;
    proto.registerResource = function (req: any, callback: any) {
        onRequest(req.getType(), req.getName(), {
            parent: req.getParent() || undefined,
            dependencies: req.getDependenciesList(),
            secretOutputs: req.getAdditionalsecretoutputsList(),
            options: { protect: req.getProtect() === true, retainOnDelete: req.getRetainondelete() === true },
            provider: req.getProvider(),
            providers: Object.fromEntries(req.getProvidersMap().toArray()),
        });
        return original.call(this, req, callback);
    };
}

/** Waits until every pending registration has reached the mocks. */
export function waitForRPCs(): Promise<void> {
    return require("@pulumi/pulumi/runtime/settings").waitForRPCs();
}
