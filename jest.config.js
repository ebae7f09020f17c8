/** Type-checking runs once in `tsc --noEmit` (scripts/test.sh); jest only transpiles, which is 2-3x faster here. */
module.exports = {
    testEnvironment: "node",
    roots: ["<rootDir>/test"],
    testMatch: ["**/*.test.ts"],
    transform: { "^.+\\.ts$": "ts-jest" },
    testTimeout: 60000,
};
