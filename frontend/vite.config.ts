/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// Dev server only: where /api and /health go. In compose the API service is `api` on 8000;
// on the host use `DRYDOCK_DEV_API=http://127.0.0.1:8000 npm run dev`.
const devApi = process.env.DRYDOCK_DEV_API ?? "http://api:8000";

export default defineConfig({
  build: {
    outDir: "dist",
    assetsDir: "assets", // content-hashed names; nginx serves /assets/ as immutable
    sourcemap: false,
    target: "es2022",
  },
  server: {
    host: "0.0.0.0",
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: devApi, changeOrigin: true },
      "/health": { target: devApi, changeOrigin: true },
    },
    watch: {
      // Bind mounts from the host do not always deliver inotify events into containers.
      usePolling: process.env.CHOKIDAR_USEPOLLING === "true",
    },
  },
  test: {
    environment: "happy-dom",
    include: ["tests/**/*.test.ts"],
    restoreMocks: true,
  },
});
