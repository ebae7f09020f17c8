/**
 * kubernetes-models and @kubernetes-models/* (and their validators' is-cidr chain) ship ES modules whose package
 * `exports` only name the "import" condition; jest resolves CommonJS requests with "require". For those packages
 * resolve with "import" (jest.config.js transpiles them to CommonJS); every other request resolves as before.
 */
const ESM_ONLY = /(^|\/node_modules\/)(@kubernetes-models\/[^/]+|kubernetes-models|is-cidr|cidr-regex|ip-regex)(\/|$)/;

module.exports = (request, options) => {
    const esm = ESM_ONLY.test(request) || ESM_ONLY.test(`${options.basedir}/`);
    return options.defaultResolver(request, esm ? { ...options, conditions: ["import", "default"] } : options);
};
