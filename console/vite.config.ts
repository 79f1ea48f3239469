import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * The console is served by the service under /console/ (src/http/console.ts):
 * asset URLs are absolute under that base, hashed, and listed in the
 * manifest that console/build.ts reads to measure the first load.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    manifest: true,
    target: "es2022",
    // Every browser that runs ES2022 supports modulepreload.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: {
    // `npm run console:dev`: the service (npm run dev) answers the RPCs.
    proxy: { "^/(tenancy|grpc)\\.": "http://127.0.0.1:8080", "/console/config.json": "http://127.0.0.1:8080" },
  },
});
