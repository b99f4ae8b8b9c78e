// ESLint's settings for the JavaScript sse_response ships; run by
// tests/js/test_javascript.py as `eslint --config tests/js/eslint.config.mjs`
// from the repository's root.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["sse_response/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      // A classic script, in a page or in a SharedWorker.
      sourceType: "script",
      globals: { ...globals.browser, ...globals.sharedworker },
    },
    rules: {
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: "error",
      curly: "error",
      "no-shadow": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { args: "after-used" }],
      strict: ["error", "function"],
    },
  },
];
