// The console, driven as a person would in real headless Chromium (Debian's, by Playwright) against
// the real server's web port: Generate (with an attachment), watch the stages, see the picture,
// Regenerate, Tweak (and who last changed a file), Diff, Back, a fan-out (its estimate, its outputs
// side by side, and Cancel the rest), a queued job's place and Cancel, Close while a job runs, reopen it and see it
// finished; then draft a prompt, edit it and Generate from it. A failure leaves a screenshot in clients/web/build/screenshots;
// ATELIER_CONSOLE_SCREENSHOT=path saves one of the finished picture.
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { createAtelierClient } from "../../src/index.js";
import { TOKEN } from "../../test/server.js";

const baseUrl = inject("baseUrl");
const CHROMIUM = process.env["ATELIER_CHROMIUM"] || "/usr/bin/chromium";
const SCREENSHOTS = resolve(import.meta.dirname, "..", "..", "build", "screenshots");
// What this machine's closed network needs: no background requests to Google's services.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let browser: Browser;
let page: Page;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  page.setDefaultTimeout(10_000);
});

afterAll(async () => {
  await browser?.close();
});

/** Waits until exactly these pictures (by their alt text) are shown and loaded. */
async function loaded(pictures: Locator, alts: string[]): Promise<void> {
  await expect
    .poll(() =>
      pictures.evaluateAll((imgs) =>
        imgs.map((img) => `${img.getAttribute("alt")}: ${(img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0}`),
      ),
    )
    .toEqual(alts.map((alt) => `${alt}: true`));
}

/** Runs a step of the flow; a failure saves a screenshot of the page as it was. */
async function step(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const path = join(SCREENSHOTS, `${name.replace(/\W+/g, "-")}.png`);
    await page.screenshot({ path, fullPage: true }).catch(() => undefined);
    throw new Error(`console step "${name}" failed (screenshot: ${path}): ${String(error)}`, { cause: error });
  }
}

it("generates, follows, shows, regenerates, tweaks, goes back, closes, reopens, and drafts before generating", async () => {
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const dialog = page.getByRole("dialog");
  const status = dialog.getByRole("status");

  await step("sign in", async () => {
    await page.goto(`${baseUrl}/`);
    await expect.poll(() => page.title()).toBe("Atelier console");
    // This server asks for a token: the page says so and opens Credentials.
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("Enter a token or API key");
    expect(await page.locator("#credentials").getAttribute("open")).toBe("");
    await page.getByLabel("Token or API key").fill(TOKEN);
    await page.getByRole("button", { name: "Save" }).click();
  });

  await step("generate a picture", async () => {
    await page.getByRole("button", { name: "New generation" }).click();
    await expect.poll(() => dialog.isVisible()).toBe(true);
    const model = dialog.getByLabel("Model", { exact: true });
    // The choices come from ListModels: the server's models, its default chosen.
    await expect.poll(() => model.locator("option").allTextContents()).toContain("Offline (deterministic, no network) (default)");
    expect(await model.inputValue()).toBe("offline");
    await dialog.getByLabel("Prompt").fill("a logo of a lighthouse");
    await dialog.getByLabel("Attachments").setInputFiles({
      name: "brief.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("tall, red and white"),
    });
    await dialog.getByRole("button", { name: "Generate" }).click();
  });

  await step("watch the stages and see the picture", async () => {
    await expect.poll(() => status.textContent()).toBe("Completed: 2 files");
    // Every stage started, in order, 1 of n to n of n (the offline provider's, then Save).
    const log = await dialog.getByRole("log").locator("li").allTextContents();
    const started = log.map((line) => /^[A-Z]\w+ \((\d+)\/(\d+)\)$/.exec(line)).filter((match) => match !== null);
    const total = Number(started[0]?.[2]);
    expect(started.map((match) => Number(match[1]))).toEqual(Array.from({ length: total }, (_, index) => index + 1));
    expect(total).toBeGreaterThanOrEqual(3);
    const picture = dialog.getByRole("img", { name: "logo.png, made by version 1" });
    await expect.poll(() => picture.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(64);
    // The code viewer opens the first text file: the README, which lists the attachment.
    await expect.poll(() => dialog.locator("#viewer-code").textContent()).toContain("- `brief.txt` (text/plain, 19 bytes)");
    const shot = process.env["ATELIER_CONSOLE_SCREENSHOT"];
    if (shot) {
      mkdirSync(dirname(shot), { recursive: true });
      await page.screenshot({ path: shot });
    }
  });

  await step("regenerate with the same settings", async () => {
    await dialog.getByRole("button", { name: "Regenerate" }).click();
    await expect.poll(() => dialog.getByRole("heading", { level: 2 }).textContent()).toContain("Version 2");
    await expect.poll(() => status.textContent()).toBe("Completed: 2 files");
    // Only this version's picture: version 1's is gone from the view.
    await expect.poll(() => dialog.getByRole("img").evaluateAll((imgs) => imgs.map((img) => img.getAttribute("alt")))).toEqual([
      "logo.png, made by version 2",
    ]);
  });

  await step("tweak it", async () => {
    await dialog.getByLabel("Change this version").fill("add file docs/usage.md");
    await dialog.getByRole("button", { name: "Tweak" }).click();
    await expect.poll(() => dialog.getByRole("heading", { level: 2 }).textContent()).toContain("Version 3");
    await expect.poll(() => status.textContent()).toBe("Completed: 3 files");
    await expect.poll(() => dialog.getByRole("button", { name: /^docs\/usage\.md/ }).count()).toBe(1);
    // The viewer says which version last changed the file (Blame), and why.
    await dialog.getByRole("button", { name: /^docs\/usage\.md/ }).click();
    await expect.poll(() => dialog.locator("#viewer-blame").textContent()).toBe(
      "Last changed in v3 (tweak): “add file docs/usage.md”",
    );
    // The lineage: v2 and v3 are v1's regenerate and v2's tweak.
    const tree = dialog.locator("#version-tree");
    expect(await tree.locator("button").count()).toBe(3);
    await dialog.getByRole("button", { name: "Show diff" }).click();
    await expect.poll(() => dialog.locator("#diff").textContent()).toContain("added: docs/usage.md");
  });

  await step("back to the form, with the same settings", async () => {
    await dialog.getByRole("button", { name: "Back to the form" }).click();
    await expect.poll(() => dialog.getByLabel("Prompt").inputValue()).toContain("add file docs/usage.md");
    expect(await dialog.getByLabel("Model", { exact: true }).inputValue()).toBe("offline");
  });

  await step("ask for variants: the estimate follows the form, the outputs come side by side", async () => {
    const estimate = dialog.locator("#estimate");
    await dialog.getByLabel("Prompt").fill("a logo of a lighthouse");
    // The test server prices the offline model at $0.04 an image, one image an output.
    await expect.poll(() => estimate.textContent()).toBe("Estimated cost: $0.04 for 1 output on offline");
    // The server's limit on a fan-out's outputs (from ListModels) bounds the field.
    expect(await dialog.getByLabel("How many").getAttribute("max")).toBe("12");
    await dialog.getByLabel("How many").fill("3");
    await expect.poll(() => estimate.textContent()).toBe("Estimated cost: $0.12 for 3 outputs on offline");
    await dialog.getByLabel("Or variants").fill("front, side");
    await expect.poll(() => estimate.textContent()).toBe("Estimated cost: $0.08 for 2 outputs on offline");
    expect(await dialog.getByLabel("How many").isDisabled()).toBe(true);
    await dialog.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => dialog.getByRole("heading", { level: 2 }).textContent()).toBe("2 outputs of “a logo of a lighthouse”");
    await expect.poll(() => status.textContent()).toBe("Done: 2 completed");
    const cards = dialog.getByRole("list", { name: "Outputs side by side" }).locator(":scope > li");
    expect(await cards.getByRole("heading", { level: 3 }).allTextContents()).toEqual(["front · v1", "side · v2"]);
    await expect.poll(() => cards.locator(".output-state").allTextContents()).toEqual(["Completed: 2 files", "Completed: 2 files"]);
    const pictures = cards.getByRole("img");
    await expect.poll(() => pictures.evaluateAll((imgs) => imgs.map((img) => img.getAttribute("alt")))).toEqual([
      "logo.png, made by version 1",
      "logo.png, made by version 2",
    ]);
    await expect
      .poll(() => pictures.evaluateAll((imgs) => imgs.map((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth)))
      .toEqual([64, 64]);
    // Each output opens on its own, and leads back to them all; each view is seen whole (its
    // pictures loaded) before the next click, as a person would.
    await dialog.getByRole("button", { name: "Open version 2 (side)" }).click();
    await expect.poll(() => dialog.getByRole("heading", { level: 2 }).textContent()).toContain("Version 2");
    await expect.poll(() => status.textContent()).toBe("Completed: 2 files");
    await loaded(dialog.locator("#media").getByRole("img"), ["logo.png, made by version 2"]);
    await dialog.getByRole("button", { name: "All outputs side by side" }).click();
    await expect.poll(() => status.textContent()).toBe("Done: 2 completed");
    await loaded(pictures, ["logo.png, made by version 1", "logo.png, made by version 2"]);
    await dialog.getByRole("button", { name: "Open version 1 (front)" }).click();
    await expect.poll(() => dialog.getByRole("heading", { level: 2 }).textContent()).toContain("Version 1");
    await loaded(dialog.locator("#media").getByRole("img"), ["logo.png, made by version 1"]);
    // Back from one version: a single output again.
    await dialog.getByRole("button", { name: "Back to the form" }).click();
    expect(await dialog.getByLabel("Or variants").inputValue()).toBe("");
    expect(await dialog.getByLabel("How many").inputValue()).toBe("1");
  });

  await step("a queued job shows its place, and Cancel stops it", async () => {
    // Another job keeps the one-at-a-time model busy meanwhile.
    const api = createAtelierClient({ baseUrl, token: TOKEN });
    const blocker = await api.generate(JSON.stringify({ stages: 1, delay: 20 }), { model: "one-at-a-time" });
    await dialog.getByLabel("Model", { exact: true }).selectOption("one-at-a-time");
    await dialog.getByLabel("Prompt").fill(JSON.stringify({ stages: 1, delay: 0 }));
    await dialog.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => status.textContent()).toBe("Queued");
    await expect.poll(() => dialog.locator("#queue").textContent()).toMatch(/^Position 1 in the queue/);
    await dialog.getByRole("button", { name: "Cancel job" }).click();
    await expect.poll(() => status.textContent()).toMatch(/^Cancelled: /);
    expect(await dialog.getByRole("button", { name: "Cancel job" }).isVisible()).toBe(false);
    await api.cancel(blocker.name);
    await dialog.getByRole("button", { name: "Back to the form" }).click();
  });

  await step("Cancel the rest stops every output of a fan-out that has not ended", async () => {
    // On the one-at-a-time model: the first output runs for 20 s, the others wait behind it.
    await dialog.getByLabel("Prompt").fill(JSON.stringify({ stages: 1, delay: 20 }));
    await dialog.getByLabel("How many").fill("3");
    await dialog.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => status.textContent()).toMatch(/^0 of 3 ended: /);
    const cancelRest = dialog.getByRole("button", { name: "Cancel the rest" });
    await cancelRest.click();
    await expect.poll(() => status.textContent()).toBe("Done: 3 cancelled");
    expect(await cancelRest.isVisible()).toBe(false);
    const cards = dialog.getByRole("list", { name: "Outputs side by side" }).locator(":scope > li");
    await expect.poll(() => cards.evaluateAll((items) => items.map((item) => item.getAttribute("data-state")))).toEqual([
      "CANCELLED",
      "CANCELLED",
      "CANCELLED",
    ]);
    await dialog.getByRole("button", { name: "Back to the form" }).click();
    await dialog.getByLabel("How many").fill("1");
  });

  await step("start a slow job, watch it live, close it", async () => {
    await dialog.getByLabel("Model", { exact: true }).selectOption("scripted");
    await dialog.getByLabel("Prompt").fill(JSON.stringify({ stages: 3, delay: 1 }));
    await dialog.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => status.textContent(), { interval: 50 }).toBe("Stage 1 of 4: Step 1");
    await expect.poll(() => status.textContent(), { interval: 50 }).toBe("Stage 2 of 4: Step 2");
    expect(await dialog.getByRole("button", { name: "Cancel job" }).isVisible()).toBe(true);
    await dialog.getByRole("button", { name: "Close", exact: true }).click();
    await expect.poll(() => dialog.isVisible()).toBe(false);
  });

  await step("reopen it and see the job finished", async () => {
    const item = page.locator("#generations li").filter({ hasText: '{"stages":3' });
    await expect.poll(() => item.count()).toBe(1);
    await item.getByRole("button").click();
    await expect.poll(() => dialog.isVisible()).toBe(true);
    // Closing did not cancel it: it ran on to the end.
    await expect.poll(() => status.textContent()).toBe("Completed: 1 file");
    await page.keyboard.press("Escape");
    await expect.poll(() => dialog.isVisible()).toBe(false);
  });

  await step("draft a prompt, edit it and generate from it", async () => {
    await page.getByRole("button", { name: "Draft a prompt" }).click();
    await expect.poll(() => dialog.isVisible()).toBe(true);
    expect(await dialog.getByRole("heading", { level: 2 }).textContent()).toBe("Draft a prompt");
    const target = dialog.getByLabel("Model to draft for");
    await expect.poll(() => target.locator("option").count()).toBe(3);
    await target.selectOption("offline");
    await dialog.getByLabel("Your idea").fill("a  tiny   python cli that greets");
    await dialog.getByLabel("Style or context").fill("friendly, terse");
    await dialog.getByRole("button", { name: "Draft prompt" }).click();
    // The form opens with the drafted prompt (the offline provider's tidy rewrite), editable.
    const prompt = dialog.getByLabel("Prompt", { exact: true });
    await expect.poll(() => prompt.inputValue()).toBe("A tiny python cli that greets. Style: Friendly, terse.");
    expect(await dialog.getByLabel("Model", { exact: true }).inputValue()).toBe("offline");
    const note = await dialog.locator("#draft-note-text").textContent();
    expect(note).toMatch(/^Drafted by offline for offline \(drafts\/[a-z0-9-]+\)/);
    const draftName = /\((drafts\/[a-z0-9-]+)\)/.exec(note ?? "")?.[1] ?? "";
    await prompt.fill("A tiny Python CLI that greets the user by name.");
    await dialog.getByRole("button", { name: "Generate" }).click();
    await expect.poll(() => status.textContent()).toMatch(/^Completed: \d+ files?$/);
    const title = (await dialog.locator("#version-title").textContent()) ?? "";
    expect(title).toContain(`from ${draftName}`);
    // The version records the draft and the edited prompt; the draft keeps the edit too.
    const api = createAtelierClient({ baseUrl, token: TOKEN });
    const version = await api.getVersion(/generations\/[^ ]+\/versions\/\d+/.exec(title)?.[0] ?? "");
    expect([version.prompt, version.draft]).toEqual(["A tiny Python CLI that greets the user by name.", draftName]);
    const draft = await api.getDraft(draftName);
    expect([draft.prompt, draft.draftedPrompt, draft.edited]).toEqual([
      "A tiny Python CLI that greets the user by name.",
      "A tiny python cli that greets. Style: Friendly, terse.",
      true,
    ]);
    await page.keyboard.press("Escape");
    await expect.poll(() => dialog.isVisible()).toBe(false);
  });

  expect(errors).toEqual([]);
});
