/** Type-checking runs once in `tsc --noEmit` (scripts/test.sh); jest only transpiles (swc: the cold transform cache costs little). */
module.exports = {
    testEnvironment: "node",
    roots: ["<rootDir>/test"],
    testMatch: ["**/*.test.ts"],
    // The real-engine tiers (test/tiers/) start servers and run apart: npm run test:apiserver / test:engine.
    testPathIgnorePatterns: ["/node_modules/", "/test/tiers/"],
    transform: {
        "^.+\\.ts$": [
            "@swc/jest",
            { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } },
        ],
        // The ES-module-only schema packages (see test/jest-esm-resolver.js), transpiled to CommonJS.
        "/node_modules/.+\\.js$": [
            "@swc/jest",
            { jsc: { parser: { syntax: "ecmascript" }, target: "es2022" }, module: { type: "commonjs" } },
        ],
    },
    transformIgnorePatterns: ["/node_modules/(?!(kubernetes-models|@kubernetes-models|is-cidr|cidr-regex|ip-regex)/)"],
    resolver: "<rootDir>/test/jest-esm-resolver.js",
    testTimeout: 60000,
    // Two workers on two cores: helm template and the Python checks wait on child processes while the other runs.
    maxWorkers: 2,
    // The default dev and gpu runs, recorded once per jest run; runStack(stack) with no options reads them.
    globalSetup: "<rootDir>/test/record-runs.ts",
    globalTeardown: "<rootDir>/test/record-runs-teardown.ts",
};
