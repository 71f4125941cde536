// Builds console/public/console.js: one minified ES module bundling the console (src/) with the
// client and its libraries, beside the hand-written index.html and console.css that the server's
// web port serves at `/`. The output depends only on the sources and the pinned esbuild, so
// `make console` on any machine writes the same bytes (a test checks the committed file is current).
import { build } from "esbuild";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, "public", "console.js");

await mkdir(dirname(out), { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.ts")],
  outfile: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "none",
  banner: { js: "// Built from clients/web/console/src by `make console`. Do not edit." },
  logLevel: "warning",
});
