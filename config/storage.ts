import * as pulumi from "@pulumi/pulumi";
import { Check } from "./check";
import { CRON_FIELD, RFC3339 } from "./rules";
import type { BackupConfig, BackupCredentials, StackConfig } from "./types";

/** `mlflowArtifactDestination` and its endpoint and credentials Secret (config/rules.ts: where each has no effect). */
export function readMlflowObjectStore(c: Check): StackConfig["storage"]["mlflowObjectStore"] {
    const destination = c.str("mlflowArtifactDestination");
    const endpoint = c.str("mlflowArtifactEndpoint");
    const credentialsSecret = c.str("mlflowArtifactCredentialsSecret");
    if (!destination) return undefined;
    return {
        destination,
        ...(endpoint ? { endpoint } : {}),
        ...(credentialsSecret ? { credentialsSecret } : {}),
    };
}

/** `postgresBackups` and the keys that go with it; every bad or missing one is a problem before anything exists. */
export function readBackup(
    c: Check,
    enabled: boolean | undefined,
): { config: BackupConfig; credentials: BackupCredentials } | undefined {
    const destination = c.str("backupDestination");
    const endpoint = c.str("backupEndpoint");
    const schedule = c.str("backupSchedule");
    const retention = c.str("backupRetention");
    const serverName = c.str("backupServerName");
    const recoverFrom = c.str("postgresRecoverFrom");
    const target = c.str("postgresRecoveryTarget");
    const accessKeyId = c.secret("backupAccessKeyId");
    const secretAccessKey = c.secret("backupSecretAccessKey");

    if (schedule !== undefined) {
        const fields = schedule.trim().split(/\s+/);
        if (fields.length !== 6 || !fields.every((f) => CRON_FIELD.test(f))) {
            c.fail(
                "backupSchedule",
                schedule,
                `must be a six-field cron expression with seconds first, as CloudNativePG's ScheduledBackup takes it, such as "0 0 2 * * *" (02:00 daily)${fields.length === 5 ? "; a five-field cron lacks the seconds" : ""}`,
                "pattern",
            );
        }
    }
    if (target) {
        if (!RFC3339.test(target) || Number.isNaN(Date.parse(target))) {
            c.fail(
                "postgresRecoveryTarget",
                target,
                "must be empty or an RFC 3339 time with its zone, such as 2026-11-30T14:05:00Z",
                "pattern",
            );
        } else if (!recoverFrom) {
            c.fail(
                "postgresRecoveryTarget",
                target,
                "a point in time needs postgresRecoverFrom, the backups to replay",
            );
        }
    }

    if (enabled === false) {
        if (recoverFrom) {
            c.fail(
                "postgresRecoverFrom",
                recoverFrom,
                "a recovery reads the backups of backupDestination: set postgresBackups=true with backupDestination, backupEndpoint and the backup credentials",
            );
        }
        return undefined;
    }
    if (enabled !== true) return undefined;

    if (destination === "") {
        c.fail("backupDestination", "", "required when postgresBackups is true: s3://<bucket>[/<path>]", "required");
    }
    if (endpoint === "") {
        c.fail(
            "backupEndpoint",
            "",
            "required when postgresBackups is true: the object store's https:// endpoint, such as https://s3.eu-west-1.amazonaws.com",
            "required",
        );
    }
    if (recoverFrom && serverName && recoverFrom === serverName) {
        c.fail(
            "postgresRecoverFrom",
            recoverFrom,
            `must differ from backupServerName (${serverName}): the restored cluster cannot archive its WAL into the folder it restores from; set backupServerName to a new name such as ${serverName}-2`,
        );
    }
    if (!destination || !endpoint || !schedule || !retention || !serverName || !accessKeyId || !secretAccessKey) {
        return undefined;
    }
    return {
        config: {
            destination,
            endpoint,
            schedule: schedule.trim().split(/\s+/).join(" "),
            retention,
            serverName,
            ...(recoverFrom ? { recovery: { from: recoverFrom, ...(target ? { targetTime: target } : {}) } } : {}),
        },
        credentials: { accessKeyId: pulumi.secret(accessKeyId), secretAccessKey: pulumi.secret(secretAccessKey) },
    };
}
