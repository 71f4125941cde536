// Progress survives a server crash: the client reconnects from the last event it saw, missing
// and repeating none, while the new server takes the job over.
import { afterAll, beforeAll, expect, it } from "vitest";
import { ProgressEventType, VersionState, createAtelierClient, type ProgressEvent } from "../src/index.js";
import { ServerProcess, TOKEN } from "./server.js";

let server: ServerProcess;

beforeAll(async () => {
  server = await ServerProcess.start();
});

afterAll(async () => {
  await server?.stop();
});

it("resumes a dropped Progress stream across a server restart on the same port", async () => {
  const client = createAtelierClient({ baseUrl: server.baseUrl, token: TOKEN, reconnect: { initialBackoffMs: 50 } });
  const version = await client.generate(JSON.stringify({ stages: 3, delay: 0.5 }), { model: "scripted" });
  const events: ProgressEvent[] = [];
  let restarting: Promise<void> | undefined;
  for await (const event of client.progress(version.name, { timeoutMs: 60_000 })) {
    events.push(event);
    if (!restarting && event.type === ProgressEventType.STAGE_STARTED && event.stage === 2) {
      server.kill(); // SIGKILL mid-stream: no goodbye, the stream just breaks
      restarting = new Promise((resolve) => setTimeout(resolve, 300)).then(() => server.start());
    }
  }
  await restarting;
  expect(restarting).toBeDefined();
  const seqs = events.map((event) => Number(event.seq));
  expect(seqs).toEqual(seqs.map((_, index) => index + 1)); // contiguous: nothing missed, nothing twice
  expect(events.at(-1)?.state).toBe(VersionState.COMPLETED);
  expect(events.some((event) => event.message.includes("Requeued"))).toBe(true); // the new server took over
  const final = await client.getVersion(version.name);
  expect(final.lastEventSeq).toBe(events.at(-1)?.seq);
});
