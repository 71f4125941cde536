import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Two projects sharing one real server (test/global-setup.ts): the client's tests (`npm test`)
// and the console's, in Chromium (`npm run test:console`). A test that restarts a server starts its own.
// expect.poll waits up to 15 s (its default is 1 s): the machine may be busy.
const shared = {
  globalSetup: ["test/global-setup.ts"],
  testTimeout: 30_000,
  hookTimeout: 60_000,
  expect: { poll: { timeout: 15_000 } },
};

export default defineConfig({
  // The package by its name, as an application (and the README's example) imports it.
  resolve: { alias: { "@atelier/web": fileURLToPath(new URL("./src/index.ts", import.meta.url)) } },
  test: {
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: "client", include: ["test/**/*.test.ts"], ...shared } },
      { extends: true, test: { name: "console", include: ["console/test/**/*.test.ts"], ...shared, testTimeout: 90_000 } },
    ],
  },
});
