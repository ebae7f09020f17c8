// The CrossGuard pack: `pulumi preview --policy-pack policy --policy-pack-config policy/config/<stack>.json`.
// Constructing a PolicyPack starts the analyzer's gRPC server, so this file only builds the pack; the policies live
// in ./policies, where tests call them directly.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("fx-ml-pipeline", { enforcementLevel: "mandatory", policies });
