import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// Tests import sibling workspaces from their TypeScript sources (the "@edgemeter/source"
// export condition) so `vitest` never runs stale `dist/` code; spawned processes
// (gateway, cloud, simulator binaries) run the `tsc -b` output, which `npm test` builds first.
export default defineConfig({
  resolve: { conditions: ["@edgemeter/source", ...defaultServerConditions] },
  ssr: { resolve: { conditions: ["@edgemeter/source", ...defaultServerConditions] } },
  test: {
    include: ["{shared,hardware,gateway,cloud,provisioning}/src/**/*.test.ts", "test/e2e/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
  },
});
