import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
    { ignores: ["node_modules/", "bin/", "out/", "app/", ".venvs/", "policy/node_modules/", "**/*.js"] },
    js.configs.recommended,
    ...tseslint.configs.recommended,
    {
        rules: {
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
            "no-new": "off",
        },
    },
    {
        // Node scripts written as ES modules.
        files: ["**/*.mjs"],
        languageOptions: { globals: { process: "readonly", console: "readonly" } },
    },
    {
        // Tests, their tools and the footprint report walk arbitrary resource inputs and objects, and load modules
        // with require().
        files: ["test/**/*.ts", "tools/**/*.ts", "policy/**/*.test.ts", "scripts/footprint-figures.ts"],
        rules: {
            "@typescript-eslint/no-explicit-any": "off",
            "@typescript-eslint/no-require-imports": "off",
        },
    },
);
