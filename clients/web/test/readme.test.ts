// The README's TypeScript example, run as written against the real server (only its address and
// token replaced), like the grpcurl recipes.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, inject, it, vi } from "vitest";
import { ROOT, TOKEN } from "./server.js";

const README_CLIENT = '{ baseUrl: "http://127.0.0.1:8080" }';

afterEach(() => {
  vi.restoreAllMocks();
});

it("the README's TypeScript example works", async () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.split("### The TypeScript client")[1]?.split(/\n##+ /)[0] ?? "";
  const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  expect(example, "the README lost its TypeScript example").toBeDefined();
  expect(example).toContain(README_CLIENT);
  const code = example!.replace(README_CLIENT, JSON.stringify({ baseUrl: inject("baseUrl"), token: TOKEN }));
  const file = join(mkdtempSync(join(tmpdir(), "atelier-readme-")), "example.ts");
  writeFileSync(file, code);
  const printed: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...values: unknown[]) => {
    printed.push(values.map(String).join(" "));
  });
  await import(/* @vite-ignore */ file);
  const out = printed.join("\n");
  expect(out).toMatch(/^stage 1\/4: Plan \(1\/4\)$/m);
  expect(out).toContain("COMPLETED");
  expect(out).toMatch(/^logo\.png image\/png 64×64 http:\/\/127\.0\.0\.1:\d+\/\S+$/m);
  expect(out).toContain("NotFound VERSION_NOT_FOUND");
});
