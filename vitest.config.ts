import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    // Each file starts its own server on its own fresh database.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 120_000,
  },
});
