/** Shared inputs for the application components' tests (call inside runProgram: outputs need its registry). */

/** A FeastConnection built inside the isolated module registry (outputs must come from the same @pulumi/pulumi). */
export function feastConnection() {
    const pulumi = require("@pulumi/pulumi");
    return {
        redis: { host: "fx-redis.fx-ml.svc.cluster.local", port: 6379, feastDb: 0 },
        redisPassword: { name: pulumi.output("redis-auth"), key: "password" },
        registry: { host: "fx-postgres-rw.fx-ml.svc.cluster.local", port: 5432, database: "feast" },
        registryUser: { name: pulumi.output("pg-feast"), key: "username" },
        registryPassword: { name: pulumi.output("pg-feast"), key: "password" },
    };
}
