// Starts the one real server the test files share, and tells them where its web port is.
import "vitest";
import type { TestProject } from "vitest/node";
import { ServerProcess } from "./server.js";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await ServerProcess.start();
  project.provide("baseUrl", server.baseUrl);
  return async () => {
    await server.stop();
  };
}
