// The TypeScript client against the real server's web port (Connect over HTTP/1.1 fetch, as a
// browser makes it): every call the console makes, and each kind of failure as a typed error.
import { createHash } from "node:crypto";
import { beforeAll, describe, expect, inject, it } from "vitest";
import {
  Aborted,
  AlreadyExists,
  Cancelled,
  Code,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  ProgressEventType,
  Unauthenticated,
  VersionKind,
  VersionState,
  WaitTimeout,
  createAtelierClient,
  fileUrl,
  generationOf,
  isBatchDone,
  isBatchName,
  isTerminal,
  pickModel,
  type AtelierClient,
  type ProgressEvent,
} from "../src/index.js";
import { TOKEN } from "./server.js";

const baseUrl = inject("baseUrl");
const PICTURE_PROMPT = "a logo of a lighthouse";
const slow = (seconds: number, stages = 2): string => JSON.stringify({ stages, delay: seconds });

let client: AtelierClient;

beforeAll(() => {
  client = createAtelierClient({ baseUrl, token: TOKEN });
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) {
    all.push(item);
  }
  return all;
}

describe("models", () => {
  it("lists the server's models and its default, never a list of our own", async () => {
    const answer = await client.listModels();
    const names = answer.models.map((model) => model.name);
    expect(names).toContain("offline");
    expect(names).toContain("scripted");
    expect(answer.defaultModel).toBe("offline");
    expect(pickModel(answer)?.name).toBe("offline");
    expect(pickModel(answer, "scripted")?.name).toBe("scripted");
    // And what it accepts in a request: its settings (the test server's fan-out limit is 12).
    expect(answer.limits?.maxBatchSize).toBe(12);
    expect(answer.limits?.maxPromptBytes).toBe(32n * 1024n);
    expect(answer.limits?.maxAttachmentBytes).toBe(16n * 1024n * 1024n);
  });
});

describe("a generation, start to end", () => {
  it("generates with a request id, follows every stage in order and reads the picture it made", async () => {
    const version = await client.generate(PICTURE_PROMPT);
    expect(version.state).toBe(VersionState.QUEUED);
    expect(version.requestId).toMatch(/^[0-9a-f-]{36}$/);
    // int64 fields are bigint (protobuf-es's default), lossless whatever their size.
    expect(typeof version.number).toBe("bigint");
    expect(version.number).toBe(1n);

    const events: ProgressEvent[] = [];
    const done = await client.wait(version.name, { onEvent: (event) => events.push(event) });
    expect(done.state).toBe(VersionState.COMPLETED);
    expect(events.map((event) => Number(event.seq))).toEqual(events.map((_, index) => index + 1));
    const stages = events.filter((event) => event.type === ProgressEventType.STAGE_STARTED);
    expect(stages.map((event) => `${event.stage}/${event.totalStages}`)).toEqual(
      stages.map((_, index) => `${index + 1}/${stages.length}`),
    );
    expect(isTerminal(events.at(-1)!.state)).toBe(true);

    const files = await collect(client.listFiles(done.name));
    const picture = files.find((file) => file.mimeType === "image/png");
    expect(picture, JSON.stringify(files.map((file) => file.path))).toBeDefined();
    const data = await client.readFile(done.name, picture!.path);
    expect(data.length).toBe(Number(picture!.size));
    expect(createHash("sha256").update(data).digest("hex")).toBe(picture!.sha256);
    expect([...data.subarray(1, 4)].map((byte) => String.fromCharCode(byte)).join("")).toBe("PNG");
  });

  it("answers a repeated request id with the first call's version, starting nothing", async () => {
    const requestId = crypto.randomUUID();
    const first = await client.generate("a python CLI that converts celsius to fahrenheit", { requestId });
    const again = await client.generate("a python CLI that converts celsius to fahrenheit", { requestId });
    expect(again.name).toBe(first.name);
    expect(again.requestId).toBe(requestId);
  });

  it("resumes after a given seq, delivering only the later events", async () => {
    const version = await client.generate(PICTURE_PROMPT);
    const all = await collect(client.progress(version.name));
    const later = await collect(client.progress(version.name, { afterSeq: 3 }));
    expect(later.map((event) => event.seq)).toEqual(all.slice(3).map((event) => event.seq));
    expect(later.at(-1)?.state).toBe(VersionState.COMPLETED);
  });

  it("tweaks, iterates and regenerates; the lineage and the diff say what changed", async () => {
    const v1 = await client.wait((await client.generate("a python CLI that converts celsius to fahrenheit")).name);
    const tweak = await client.wait((await client.tweak(v1.name, "add file docs/usage.md", { etag: v1.etag })).name);
    const iterate = await client.wait((await client.iterate(tweak.name, "add file app/schemas/project.py")).name);
    const again = await client.wait((await client.regenerate(v1.name)).name);
    expect([tweak.kind, iterate.kind, again.kind]).toEqual([
      VersionKind.TWEAK,
      VersionKind.ITERATE,
      VersionKind.REGENERATE,
    ]);
    expect([tweak.parent, iterate.parent]).toEqual([v1.name, tweak.name]);
    for (const version of [tweak, iterate, again]) {
      expect(version.state).toBe(VersionState.COMPLETED);
      expect(version.requestId).not.toBe("");
    }
    const lineage = await collect(client.listVersions(generationOf(v1.name), { pageSize: 2 }));
    expect(lineage.map((version) => version.number)).toEqual([1n, 2n, 3n, 4n]);

    const diff = await client.diff(v1.name, iterate.name);
    expect(diff.files.map((file) => file.path)).toEqual(["app/schemas/project.py", "docs/usage.md"]);
    expect(diff.files[0]?.unifiedDiff).toContain("+++");
  });
});

describe("a fan-out", () => {
  it("estimates it, follows its outputs in one stream with the batch's counts, and resumes it by token", async () => {
    const one = await client.estimateCost(PICTURE_PROMPT);
    const two = await client.estimateCost(PICTURE_PROMPT, { variants: ["front", "side"] });
    expect([one.outputs, two.outputs, two.calls]).toEqual([1n, 2n, 2n]);
    expect([one.cost, two.cost]).toEqual([0.04, 0.08]); // the test server's offline model: $0.04 an image
    expect(two.assumptions.length).toBeGreaterThan(0);
    // An attached image is priced as the model is sent it: 258 tokens a call, estimated, and said.
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]);
    const attached = await client.estimateCost(PICTURE_PROMPT, {
      variants: ["front", "side"],
      attachments: [{ name: "sketch.png", mimeType: "image/png", data: png }],
    });
    expect(attached.inputTokens - two.inputTokens).toBe(2n * 258n);
    expect(attached.assumptions.some((said) => said.startsWith("1 attachment (1 image or other media file"))).toBe(true);

    const first = await client.generate(PICTURE_PROMPT, { variants: ["front", "side"] });
    expect(isBatchName(first.batch)).toBe(true);
    expect(first.variant).toBe("front");
    const events = await collect(client.progress(first.batch, { timeoutMs: 30_000 }));
    const ended = events.filter((event) => isTerminal(event.state));
    expect(ended.map((event) => event.version).sort()).toEqual([first.name, first.name.replace(/1$/, "2")]);
    const last = events.at(-1);
    expect(last?.batchCounts?.completed).toBe(2n);
    expect(isBatchDone(last?.batchCounts)).toBe(true);
    // Resumed after any event, the stream says exactly what came after it, and ends.
    const middle = events.findIndex((event) => event === ended[0]);
    const resumed = await collect(client.progress(first.batch, { resumeToken: ended[0]?.resumeToken ?? "" }));
    const key = (event: ProgressEvent): string => `${event.version}#${event.seq}`;
    expect(resumed.map(key).sort()).toEqual(events.slice(middle + 1).map(key).sort());
    expect(await collect(client.progress(first.batch, { resumeToken: last?.resumeToken ?? "" }))).toEqual([]);

    const batch = await client.waitBatch(first.batch);
    expect(batch.done).toBe(true);
    expect(batch.versions.map((version) => version.variant)).toEqual(["front", "side"]);
    const usage = await client.getUsage();
    expect(usage.currency).toBe("USD");
  });

  it("refuses variants and a count together, saying which field", async () => {
    const error = await client.generate(PICTURE_PROMPT, { variants: ["a"], count: 2 }).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(InvalidArgument);
    expect((error as InvalidArgument).reason).toBe("VARIANTS_AND_COUNT");
  });
});

describe("drafts, then generate; blame", () => {
  it("drafts a prompt, edits it, generates from it and says who last changed each file", async () => {
    const draft = await client.draftPrompt("a  tiny app", { context: "python", model: "offline" });
    // The offline provider's deterministic draft (server/providers/offline/_prompt_draft.py).
    expect([draft.prompt, draft.model, draft.edited]).toEqual(["A tiny app. Style: Python.", "offline", false]);
    const edited = await client.updateDraft(draft.name, "A tiny Python app.", { etag: draft.etag });
    expect([edited.prompt, edited.draftedPrompt, edited.edited]).toEqual(["A tiny Python app.", draft.prompt, true]);
    await expect(client.updateDraft(draft.name, "stale", { etag: draft.etag })).rejects.toBeInstanceOf(Aborted);
    expect((await collect(client.listDrafts())).map((item) => item.name)).toContain(draft.name);

    const v1 = await client.wait((await client.generate(edited.prompt, { draft: draft.name, model: "offline" })).name);
    expect([v1.state, v1.prompt, v1.draft]).toEqual([VersionState.COMPLETED, "A tiny Python app.", draft.name]);
    const v2 = await client.wait((await client.iterate(v1.name, 'add notes.txt with content "hi"')).name);
    const blames = await collect(client.blame(v2.name, { pageSize: 2 }));
    const notes = blames.find((blame) => blame.path === "notes.txt");
    expect([notes?.version, notes?.kind]).toEqual([v2.name, VersionKind.ITERATE]);
    expect(new Set(blames.filter((blame) => blame !== notes).map((blame) => blame.version))).toEqual(new Set([v1.name]));
    const files = await collect(client.listFiles(v2.name, { blame: true }));
    expect(files.map((file) => file.blame?.version)).toEqual(blames.map((blame) => blame.version));

    // A draft a version came from stays; an unused one is deleted.
    await expect(client.deleteDraft(draft.name)).rejects.toBeInstanceOf(FailedPrecondition);
    const requestId = crypto.randomUUID();
    const dropped = await client.draftPrompt("never mind", { model: "offline", requestId });
    // A repeat with the request id answers the same draft; another text with it is refused.
    expect(await client.draftPrompt("never mind", { model: "offline", requestId })).toEqual(dropped);
    expect(dropped.requestId).toBe(requestId);
    const reused = await client.draftPrompt("changed my mind", { model: "offline", requestId }).catch((e: unknown) => e);
    expect(reused).toBeInstanceOf(AlreadyExists);
    expect((reused as AlreadyExists).reason).toBe("REQUEST_ID_REUSED");
    await client.deleteDraft(dropped.name, { etag: dropped.etag });
    await expect(client.getDraft(dropped.name)).rejects.toBeInstanceOf(NotFound);
  });
});

describe("files by URL, and uploads", () => {
  it("serves a picture at its signed URL, with no header, and a thumbnail of it", async () => {
    const done = await client.wait((await client.generate(PICTURE_PROMPT)).name);
    const picture = (await collect(client.listFiles(done.name))).find((file) => file.mimeType === "image/png")!;
    expect([picture.width, picture.height]).toEqual([64, 64]);
    const response = await fetch(fileUrl(picture));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("image/png");
    const data = new Uint8Array(await response.arrayBuffer());
    expect(createHash("sha256").update(data).digest("hex")).toBe(picture.sha256);
    const thumbnail = new Uint8Array(await (await fetch(fileUrl(picture, { width: 16 }))).arrayBuffer());
    expect(new DataView(thumbnail.buffer).getUint32(16)).toBe(16); // the PNG header's width
    expect(fileUrl(picture, { width: 16 })).toContain("sig=");
  });

  it("uploads a tree in one request, as a browser can, and reads it back", async () => {
    const readme = new Blob(["# Uploaded\n"], { type: "text/markdown" });
    const version = await client.upload("my notes", [
      { path: "README.md", data: readme },
      { path: "src/app.py", data: new TextEncoder().encode("print('hi')\n") },
    ]);
    expect(version.kind).toBe(VersionKind.UPLOAD);
    expect(version.state).toBe(VersionState.COMPLETED);
    const files = await collect(client.listFiles(version.name));
    expect(files.map((file) => [file.path, file.mimeType])).toEqual([
      ["README.md", "text/markdown"],
      ["src/app.py", "text/x-python"],
    ]);
    expect(await (await fetch(fileUrl(files[1]!))).text()).toBe("print('hi')\n");
  });
});

describe("waits that can be aborted", () => {
  it("stops waiting when the signal is aborted, and the job goes on to the end", async () => {
    const version = await client.generate(slow(0.4), { model: "scripted" });
    const controller = new AbortController();
    const seen: ProgressEvent[] = [];
    const waiting = client.wait(version.name, {
      signal: controller.signal,
      onEvent: (event) => {
        seen.push(event);
        if (event.type === ProgressEventType.STAGE_STARTED) {
          controller.abort();
        }
      },
    });
    const error = await waiting.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(Cancelled);
    expect((error as Cancelled).reason).toBe("WAIT_ABORTED");
    expect(isTerminal(seen.at(-1)!.state)).toBe(false);
    expect((await client.wait(version.name)).state).toBe(VersionState.COMPLETED);
  });

  it("gives up after its timeout with WaitTimeout, and the job goes on", async () => {
    const version = await client.generate(slow(0.5), { model: "scripted" });
    const error = await client.wait(version.name, { timeoutMs: 200 }).then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(WaitTimeout);
    expect((error as WaitTimeout).reason).toBe("WAIT_TIMEOUT");
    expect((await client.wait(version.name)).state).toBe(VersionState.COMPLETED);
  });

  it("says where a queued version stands, in the version and in QUEUED events", async () => {
    const blocker = await client.generate(slow(20, 1), { model: "one-at-a-time" });
    const queued = await client.generate(slow(0, 1), { model: "one-at-a-time" });
    const events: ProgressEvent[] = [];
    for await (const event of client.progress(queued.name)) {
      events.push(event);
      if (event.type === ProgressEventType.QUEUED) {
        break; // stopping the iteration never affects the job
      }
    }
    expect(events.at(-1)?.type).toBe(ProgressEventType.QUEUED);
    expect(events.at(-1)?.queuePosition).toBe(1n);
    expect((await client.getVersion(queued.name)).queuePosition).toBe(1n);
    await Promise.all([client.cancel(blocker.name), client.cancel(queued.name)]);
  });

  it("cancels a running job only when asked to", async () => {
    const version = await client.generate(slow(5, 3), { model: "scripted" });
    const cancelled = await client.cancel(version.name);
    expect([VersionState.CANCELLED, VersionState.RUNNING, VersionState.QUEUED]).toContain(cancelled.state);
    const final = await client.wait(version.name);
    expect(final.state).toBe(VersionState.CANCELLED);
    expect(final.error?.message).not.toBe("");
  });
});

describe("typed errors carry the server's ErrorInfo", () => {
  it("NotFound for a version that does not exist", async () => {
    const error = await client.getVersion("generations/nope/versions/1").catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(NotFound);
    expect((error as NotFound).code).toBe(Code.NotFound);
    expect((error as NotFound).domain).toBe("atelier.v1");
    expect((error as NotFound).reason).not.toBe("");
  });

  it("InvalidArgument for a malformed name, with its reason", async () => {
    const error = await client.getVersion("not a name").catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(InvalidArgument);
    expect((error as InvalidArgument).reason).not.toBe("");
    expect(String(error)).toMatch(/^INVALID_ARGUMENT \[[A-Z_]+\]: /);
  });

  it("Unauthenticated for a token the server does not know", async () => {
    const stranger = createAtelierClient({ baseUrl, token: "wrong" });
    const error = await stranger.listModels().catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(Unauthenticated);
    expect((error as Unauthenticated).reason).toBe("INVALID_TOKEN");
    expect((error as Unauthenticated).domain).toBe("atelier.v1");
  });

  it("the same in JSON as in binary", async () => {
    const json = createAtelierClient({ baseUrl, token: "wrong", binary: false });
    const error = await json.listModels().catch((reason: unknown) => reason);
    expect((error as Unauthenticated).reason).toBe("INVALID_TOKEN");
  });

  it("a failed job's error is on the version, with the provider's reason", async () => {
    const script = JSON.stringify({ stages: 1, fail: { code: "FAILED_PRECONDITION", reason: "SCRIPTED_FAILURE", message: "no" } });
    const version = await client.wait((await client.generate(script, { model: "scripted" })).name);
    expect(version.state).toBe(VersionState.FAILED);
    expect(version.error?.message).toContain("no");
  });
});
