// The hand-written layer over the generated client, like the Python SDK: one factory, a request
// id on every call that starts work, Progress that resumes after a dropped stream, waits that
// can be aborted, typed errors. Everything else is `client.raw`, the generated Connect client.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import {
  AtelierService,
  GenerateRequestSchema,
  IterateRequestSchema,
  RegenerateRequestSchema,
  TweakRequestSchema,
  type DiffResponse,
  type EstimateCostRequest,
  type EstimateCostResponse,
  type GetUsageResponse,
  type ListModelsResponse,
  type MergeResponse,
} from "./gen/atelier/v1/atelier_service_pb.js";
import { VariantSchema, type Batch, type BatchCounts, type Variant } from "./gen/atelier/v1/batch_pb.js";
import type { FileBlame } from "./gen/atelier/v1/blame_pb.js";
import type { Draft } from "./gen/atelier/v1/draft_pb.js";
import { AttachmentSchema, type Attachment, type File } from "./gen/atelier/v1/file_pb.js";
import { VersionState, type Generation, type Version } from "./gen/atelier/v1/generation_pb.js";
import type { Model } from "./gen/atelier/v1/model_pb.js";
import type { ProgressEvent } from "./gen/atelier/v1/progress_pb.js";
import type { MergeStrategy } from "./gen/atelier/v1/tree_pb.js";
import { AtelierError, CLIENT_DOMAIN, Cancelled, WaitTimeout, toAtelierError, typed } from "./errors.js";
import { isBatchName } from "./names.js";

/** A token, or a function that gives the current one (called before every call). */
export type TokenSource = string | (() => string | Promise<string>);

/** How a dropped Progress stream is reconnected: capped exponential backoff, bounded attempts. */
export interface ReconnectPolicy {
  /** Reconnections in a row without a new event before giving up (default 8). */
  maxAttempts: number;
  /** The first wait, in ms (default 100); each next one doubles, up to `maxBackoffMs` (default 5000). */
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export interface AtelierClientOptions {
  /** The server's web endpoint (ATELIER_WEB_LISTEN), e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Sent as `authorization: Bearer <token>`: a development token, an API key or a JWT. */
  token?: TokenSource;
  /** The deadline of each unary call, in ms (default 30000; 0: none). Streams have their own. */
  timeoutMs?: number;
  /** Connect's binary (protobuf) encoding, the default; false for JSON, easier to read in devtools. */
  binary?: boolean;
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch;
  reconnect?: Partial<ReconnectPolicy>;
  /** Instead of all of the above but `baseUrl` and `reconnect`: a transport of your own. */
  transport?: Transport;
}

/** What the calls that start work take, besides their own arguments. */
export interface StartOptions {
  /** An idempotency key; one is made (crypto.randomUUID) when absent, so a retry starts nothing twice. */
  requestId?: string;
  signal?: AbortSignal;
}

export interface RefineOptions extends StartOptions {
  /** A model from ListModels; empty: the version's own. */
  model?: string;
  /** Refuse a stale base: the version's etag as last read (ABORTED otherwise). */
  etag?: string;
}

/**
 * A fan-out: one output per variant, or `count` outputs of the same prompt (not both). A variant
 * is a short name (`"front"`, also added to the prompt), or a name and a text added to the prompt.
 * The answer is the batch's first version; its `batch` names them all (follow it with `progress`).
 */
export interface FanOutOptions {
  variants?: readonly VariantInput[];
  count?: number;
}

export type VariantInput = string | { name?: string; promptSuffix?: string };

export interface FollowOptions {
  /** Deliver only events after this seq (0: from the start). A version's stream only. */
  afterSeq?: bigint | number;
  /** A batch's stream only: resume right after the event that carried this `resumeToken`. */
  resumeToken?: string;
  /** Stops following (the job goes on): the iteration ends with `Cancelled`. */
  signal?: AbortSignal;
  /** Gives up after this many ms with `WaitTimeout` (default: none). */
  timeoutMs?: number;
}

export interface WaitOptions extends FollowOptions {
  /** Called with every event as it arrives, e.g. to show "stage k of n". */
  onEvent?: (event: ProgressEvent) => void;
}

const TERMINAL: ReadonlySet<VersionState> = new Set([
  VersionState.COMPLETED,
  VersionState.FAILED,
  VersionState.CANCELLED,
  VersionState.NEEDS_REVIEW,
]);

/** Whether a version in this state has ended: it never changes state again. */
export function isTerminal(state: VersionState): boolean {
  return TERMINAL.has(state);
}

const DEFAULT_RECONNECT: ReconnectPolicy = { maxAttempts: 8, initialBackoffMs: 100, maxBackoffMs: 5000 };

/** A client of one Atelier server's web endpoint. Make it with `createAtelierClient`. */
export class AtelierClient {
  /** The generated Connect client, for every RPC: its calls throw ConnectError, not AtelierError. */
  readonly raw: Client<typeof AtelierService>;
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly reconnect: ReconnectPolicy;

  constructor(options: AtelierClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.reconnect = { ...DEFAULT_RECONNECT, ...options.reconnect };
    const transport =
      options.transport ??
      createConnectTransport({
        baseUrl: this.baseUrl,
        useBinaryFormat: options.binary ?? true,
        interceptors: options.token === undefined ? [] : [bearer(options.token)],
        ...(options.fetch ? { fetch: options.fetch } : {}),
      });
    this.raw = createClient(AtelierService, transport);
  }

  // Starting work: each call carries a request id, so that repeating it cannot start a second job.

  /**
   * Starts a generation; returns its version 1, QUEUED. Follow it with `progress` or `wait`.
   * `draft` names the draft the prompt came from (`draftPrompt`): the version records it; an empty
   * `prompt` or `model` is then the draft's.
   */
  generate(
    prompt: string,
    options: StartOptions & FanOutOptions & { model?: string; attachments?: readonly AttachmentInput[]; draft?: string } = {},
  ): Promise<Version> {
    return this.unary(options.signal, (call) =>
      this.raw.generate(
        {
          prompt,
          model: options.model ?? "",
          attachments: (options.attachments ?? []).map(attachment),
          requestId: requestId(options),
          ...fanOut(options),
          draft: options.draft ?? "",
        },
        call,
      ),
    );
  }

  // Drafts: a text model turns your text into a prompt for the model you chose; you edit it, then
  // `generate(prompt, { draft: draft.name })`. A draft is not a version and runs no job.

  /**
   * Asks the server's text model for a prompt for `model` (empty: the default) from `text`. A
   * repeat with the same `requestId` answers the first call's draft and asks no model again.
   */
  draftPrompt(text: string, options: StartOptions & { context?: string; model?: string } = {}): Promise<Draft> {
    return this.unary(options.signal, (call) =>
      this.raw.draftPrompt(
        { text, context: options.context ?? "", model: options.model ?? "", requestId: requestId(options) },
        call,
      ),
    );
  }

  getDraft(name: string, options: { signal?: AbortSignal } = {}): Promise<Draft> {
    return this.unary(options.signal, (call) => this.raw.getDraft({ name }, call));
  }

  /** Replaces the draft's prompt with your edit; with `etag`, a draft changed since is refused (Aborted). */
  updateDraft(name: string, prompt: string, options: { etag?: string; signal?: AbortSignal } = {}): Promise<Draft> {
    return this.unary(options.signal, (call) => this.raw.updateDraft({ name, prompt, etag: options.etag ?? "" }, call));
  }

  /** Deletes a draft for good; one a version was made from stays (FailedPrecondition, DRAFT_IN_USE). */
  async deleteDraft(name: string, options: { etag?: string; signal?: AbortSignal } = {}): Promise<void> {
    await this.unary(options.signal, (call) => this.raw.deleteDraft({ name, etag: options.etag ?? "" }, call));
  }

  /** Your drafts, newest first. */
  listDrafts(options: { pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<Draft> {
    return this.paged(options, (pageToken, call) =>
      this.raw
        .listDrafts({ pageSize: options.pageSize ?? 0, pageToken }, call)
        .then((page) => [page.drafts, page.nextPageToken] as const),
    );
  }

  /** Refines a COMPLETED version in its conversation: a new version whose parent is `name`. */
  tweak(
    name: string,
    prompt: string,
    options: RefineOptions & { attachments?: readonly AttachmentInput[] } = {},
  ): Promise<Version> {
    return this.unary(options.signal, (call) =>
      this.raw.tweak(
        {
          name,
          prompt,
          model: options.model ?? "",
          etag: options.etag ?? "",
          attachments: (options.attachments ?? []).map(attachment),
          requestId: requestId(options),
        },
        call,
      ),
    );
  }

  /** Makes a new version from `parent` and a modification prompt. */
  iterate(parent: string, prompt: string, options: RefineOptions = {}): Promise<Version> {
    return this.unary(options.signal, (call) =>
      this.raw.iterate(
        { parent, prompt, model: options.model ?? "", etag: options.etag ?? "", requestId: requestId(options) },
        call,
      ),
    );
  }

  /** Runs a version's prompt and settings again: a new sibling version (or several: a fan-out). */
  regenerate(name: string, options: StartOptions & FanOutOptions = {}): Promise<Version> {
    return this.unary(options.signal, (call) =>
      this.raw.regenerate({ name, requestId: requestId(options), ...fanOut(options) }, call),
    );
  }

  /** Three-way merges two versions of one generation; conflicts are listed and nothing is written. */
  merge(ours: string, theirs: string, options: StartOptions & { strategy?: MergeStrategy } = {}): Promise<MergeResponse> {
    return this.unary(options.signal, (call) =>
      this.raw.merge({ ours, theirs, strategy: options.strategy ?? 0, requestId: requestId(options) }, call),
    );
  }

  /**
   * Starts a generation from your own files (UploadFiles, the one-request form of UploadTree that
   * browsers can send): they become its COMPLETED version 1. A Blob's type is its MIME type;
   * empty: the server guesses it from the path.
   */
  upload(
    description: string,
    files: readonly { path: string; data: Uint8Array | Blob; mimeType?: string }[],
    options: StartOptions = {},
  ): Promise<Version> {
    return typed(async () => {
      const uploaded = await Promise.all(
        files.map(async ({ path, data, mimeType }) => ({
          path,
          mimeType: mimeType ?? (data instanceof Blob ? data.type : ""),
          data: data instanceof Blob ? new Uint8Array(await data.arrayBuffer()) : data,
        })),
      );
      return this.raw.uploadFiles(
        { description, files: uploaded, requestId: requestId(options) },
        callOptions(options.signal, this.timeoutMs),
      );
    });
  }

  /** Stops a QUEUED or RUNNING version's job; it ends CANCELLED. (Closing a view never does.) */
  cancel(name: string, options: { signal?: AbortSignal } = {}): Promise<Version> {
    return this.unary(options.signal, (call) => this.raw.cancelVersion({ name }, call));
  }

  // Following work

  /**
   * The version's events after `afterSeq`, in order, until its terminal event. For a batch
   * (`generations/{g}/batches/{b}`, a version's `batch`): every output's events, each tagged by
   * its `version` and carrying the batch's counts and a `resumeToken`, in order per output and
   * each as soon as it happens, until every output has ended. A dropped stream (the server
   * restarted, a proxy cut it, the network went away) is reconnected from the last event seen,
   * with backoff: no event is missed and none is repeated. Stopping the iteration, or aborting
   * `signal`, never affects the job.
   */
  async *progress(name: string, options: FollowOptions = {}): AsyncGenerator<ProgressEvent, void, undefined> {
    const { signal } = options;
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const cursor = isBatchName(name) ? new BatchCursor(options.resumeToken ?? "") : new VersionCursor(options.afterSeq);
    let failures = 0;
    for (;;) {
      const remaining = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      let dropped: AtelierError | undefined;
      try {
        const call: CallOptions = { ...(signal ? { signal } : {}), ...(remaining ? { timeoutMs: remaining } : {}) };
        for await (const event of this.raw.progress({ name, ...cursor.request() }, call)) {
          if (!cursor.accept(event)) {
            continue; // a reconnect may replay an event already delivered
          }
          failures = 0;
          yield event;
          if (cursor.finished(event)) {
            return; // the last event: nothing to reconnect for
          }
        }
        // The stream ended before the last event (a server shutting down ends it): resume, unless
        // a batch resumed after its last event has nothing more to say.
        if (cursor instanceof BatchCursor && (await this.getBatch(name, signal ? { signal } : {})).done) {
          return;
        }
      } catch (reason) {
        const error = toAtelierError(reason);
        if (signal?.aborted) {
          throw aborted(name, signal, error);
        }
        if (error.code === Code.DeadlineExceeded && deadline !== undefined && Date.now() >= deadline) {
          throw waitTimeout(name, options.timeoutMs ?? 0, error);
        }
        if (!isDropped(error)) {
          throw error;
        }
        dropped = error;
      }
      failures += 1;
      if (failures > this.reconnect.maxAttempts) {
        throw (
          dropped ??
          new AtelierError(`the progress stream of ${name} kept ending before the version did`, {
            code: Code.Unavailable,
            reason: "PROGRESS_ENDED_EARLY",
            domain: CLIENT_DOMAIN,
            metadata: { name },
          })
        );
      }
      const backoff = Math.min(this.reconnect.initialBackoffMs * 2 ** (failures - 1), this.reconnect.maxBackoffMs);
      try {
        await sleep(backoff * (0.8 + Math.random() * 0.2), signal);
      } catch (reason) {
        throw aborted(name, signal, reason);
      }
    }
  }

  /**
   * Follows the version until its job ends and returns it (COMPLETED, FAILED, CANCELLED or
   * NEEDS_REVIEW). Aborting `signal` stops waiting with `Cancelled`; after `timeoutMs` it gives up
   * with `WaitTimeout`. Either way the job goes on.
   */
  async wait(name: string, options: WaitOptions = {}): Promise<Version> {
    for await (const event of this.progress(name, options)) {
      options.onEvent?.(event);
    }
    return this.getVersion(name, options.signal ? { signal: options.signal } : {});
  }

  /**
   * Follows a batch until every output has ended and returns it, with its counts. `onEvent` sees
   * each output's events as they come (an output's terminal one as soon as it has ended).
   */
  async waitBatch(name: string, options: WaitOptions = {}): Promise<Batch> {
    for await (const event of this.progress(name, options)) {
      options.onEvent?.(event);
    }
    return this.getBatch(name, options.signal ? { signal: options.signal } : {});
  }

  /** A fan-out's outputs (in variant order) and how many are in each state. */
  getBatch(name: string, options: { signal?: AbortSignal } = {}): Promise<Batch> {
    return this.unary(options.signal, (call) => this.raw.getBatch({ name }, call));
  }

  /**
   * What a request would cost before it runs: a Generate of `prompt` (with its fan-out), or a
   * Tweak or Iterate (with `prompt`) or a Regenerate of the version named by `tweak`, `iterate` or
   * `regenerate`. `attachments` go with a Generate or a Tweak. Nothing is created; the answer
   * lists the assumptions it made.
   */
  estimateCost(
    prompt: string,
    options: FanOutOptions & {
      model?: string;
      tweak?: string;
      iterate?: string;
      regenerate?: string;
      attachments?: readonly AttachmentInput[];
      signal?: AbortSignal;
    } = {},
  ): Promise<EstimateCostResponse> {
    const model = options.model ?? "";
    const attachments = (options.attachments ?? []).map(attachment);
    const request: EstimateCostRequest["request"] = options.tweak
      ? { case: "tweak", value: create(TweakRequestSchema, { name: options.tweak, prompt, model, attachments }) }
      : options.iterate
        ? { case: "iterate", value: create(IterateRequestSchema, { parent: options.iterate, prompt, model }) }
        : options.regenerate
          ? { case: "regenerate", value: create(RegenerateRequestSchema, { name: options.regenerate, ...fanOut(options) }) }
          : { case: "generate", value: create(GenerateRequestSchema, { prompt, model, attachments, ...fanOut(options) }) };
    return this.unary(options.signal, (call) => this.raw.estimateCost({ request }, call));
  }

  /** What was spent by principal, model and UTC day, for jobs that ended in [start, end). */
  getUsage(
    options: { principal?: string; start?: Date; end?: Date; signal?: AbortSignal } = {},
  ): Promise<GetUsageResponse> {
    return this.unary(options.signal, (call) =>
      this.raw.getUsage(
        {
          principal: options.principal ?? "",
          ...(options.start ? { startTime: timestampFromDate(options.start) } : {}),
          ...(options.end ? { endTime: timestampFromDate(options.end) } : {}),
        },
        call,
      ),
    );
  }

  // Reading

  getVersion(name: string, options: { signal?: AbortSignal } = {}): Promise<Version> {
    return this.unary(options.signal, (call) => this.raw.getVersion({ name }, call));
  }

  getGeneration(name: string, options: { signal?: AbortSignal } = {}): Promise<Generation> {
    return this.unary(options.signal, (call) => this.raw.getGeneration({ name }, call));
  }

  /** The models the server offers, and the default one: never hard-code a list. */
  listModels(options: { signal?: AbortSignal } = {}): Promise<ListModelsResponse> {
    return this.unary(options.signal, (call) => this.raw.listModels({}, call));
  }

  /** The caller's generations, newest first, fetching pages as the iteration goes on. */
  listGenerations(options: { pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<Generation> {
    return this.paged(options, (pageToken, call) =>
      this.raw
        .listGenerations({ pageSize: options.pageSize ?? 0, pageToken }, call)
        .then((page) => [page.generations, page.nextPageToken] as const),
    );
  }

  /** A generation's versions, oldest first. */
  listVersions(generation: string, options: { pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<Version> {
    return this.paged(options, (pageToken, call) =>
      this.raw
        .listVersions({ parent: generation, pageSize: options.pageSize ?? 0, pageToken }, call)
        .then((page) => [page.versions, page.nextPageToken] as const),
    );
  }

  /** A COMPLETED version's files, in path order; with `blame`, each says which version last changed it. */
  listFiles(
    version: string,
    options: { pageSize?: number; blame?: boolean; signal?: AbortSignal } = {},
  ): AsyncGenerator<File> {
    return this.paged(options, (pageToken, call) =>
      this.raw
        .listFiles(
          { parent: version, pageSize: options.pageSize ?? 0, pageToken, includeBlame: options.blame ?? false },
          call,
        )
        .then((page) => [page.files, page.nextPageToken] as const),
    );
  }

  /** For each file of a COMPLETED version (or only `path`, a file or directory), in path order:
   * the version that last changed it, that version's kind and prompt, and when it was made. */
  blame(version: string, options: { path?: string; pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<FileBlame> {
    return this.paged(options, (pageToken, call) =>
      this.raw
        .blame({ name: version, path: options.path ?? "", pageSize: options.pageSize ?? 0, pageToken }, call)
        .then((page) => [page.files, page.nextPageToken] as const),
    );
  }

  /** One file's bytes, through the ReadFile stream (a page would rather use `fileUrl`). */
  async readFile(version: string, path: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    return typed(async () => {
      const chunks: Uint8Array[] = [];
      for await (const response of this.raw.readFile({ name: version, path }, callOptions(options.signal, 0))) {
        chunks.push(response.data);
      }
      return concat(chunks);
    });
  }

  /** Compares two versions' trees (with unified diffs of text files unless told otherwise). */
  diff(base: string, target: string, options: { textDiffs?: boolean; signal?: AbortSignal } = {}): Promise<DiffResponse> {
    return this.unary(options.signal, (call) =>
      this.raw.diff({ base, target, includeTextDiffs: options.textDiffs ?? true }, call),
    );
  }

  private unary<T>(signal: AbortSignal | undefined, call: (options: CallOptions) => Promise<T>): Promise<T> {
    return typed(() => call(callOptions(signal, this.timeoutMs)));
  }

  private async *paged<T>(
    options: { signal?: AbortSignal },
    page: (token: string, call: CallOptions) => Promise<readonly [T[], string]>,
  ): AsyncGenerator<T> {
    let token = "";
    do {
      const [items, next] = await this.unary(options.signal, (call) => page(token, call));
      yield* items;
      token = next;
    } while (token);
  }
}

/** A client of the server whose web endpoint is at `options.baseUrl`. */
export function createAtelierClient(options: AtelierClientOptions): AtelierClient {
  return new AtelierClient(options);
}

/**
 * A file's signed URL (`File.download_url`), for `<img src>`, `<audio src>`, `<video src>` or a
 * link: it needs no header, answers Range requests and expires (list the files again for fresh
 * ones). `width` asks an image for a PNG thumbnail that many pixels wide (never wider than the
 * image). "" when the server gave none (its web port is off).
 */
export function fileUrl(file: File, options: { width?: number } = {}): string {
  if (!file.downloadUrl || !options.width) {
    return file.downloadUrl;
  }
  const url = new URL(file.downloadUrl);
  url.searchParams.set("width", String(options.width));
  return url.href;
}

/** A model from ListModels by name, else the default one. */
export function pickModel(models: ListModelsResponse, name?: string): Model | undefined {
  return (
    models.models.find((model) => model.name === name) ??
    models.models.find((model) => model.name === models.defaultModel) ??
    models.models[0]
  );
}

/** An attachment: a message, or the parts of one (a browser's `File` becomes one with `attachmentFromBlob`). */
export type AttachmentInput = Attachment | { name?: string; mimeType: string; data: Uint8Array };

/** An attachment from a browser `File` (or any Blob): its name, type and bytes. */
export async function attachmentFromBlob(blob: Blob, name?: string): Promise<Attachment> {
  return create(AttachmentSchema, {
    name: name ?? ("name" in blob && typeof blob.name === "string" ? blob.name : ""),
    mimeType: blob.type || "application/octet-stream",
    data: new Uint8Array(await blob.arrayBuffer()),
  });
}

function attachment(input: AttachmentInput): Attachment {
  return "$typeName" in input ? input : create(AttachmentSchema, { name: input.name ?? "", ...input });
}

/** Whether a batch's outputs have all ended (its counts from GetBatch or from a Progress event). */
export function isBatchDone(counts: BatchCounts | undefined): boolean {
  return counts !== undefined && counts.queued + counts.running === 0n;
}

function fanOut(options: FanOutOptions): { variants: Variant[]; count?: number } {
  const variants = (options.variants ?? []).map((item) =>
    create(VariantSchema, typeof item === "string" ? { name: item } : item),
  );
  return options.count === undefined ? { variants } : { variants, count: options.count };
}

/** Where a version's Progress resumes: after the last seq delivered. */
class VersionCursor {
  private last: bigint;

  constructor(afterSeq: bigint | number | undefined) {
    this.last = BigInt(afterSeq ?? 0);
  }

  request(): { afterSeq: bigint } {
    return { afterSeq: this.last };
  }

  accept(event: ProgressEvent): boolean {
    if (event.seq <= this.last) {
      return false;
    }
    this.last = event.seq;
    return true;
  }

  finished(event: ProgressEvent): boolean {
    return isTerminal(event.state);
  }
}

/** Where a batch's Progress resumes: after the last event's resume token (each output's own seq). */
class BatchCursor {
  private readonly lastOf = new Map<string, bigint>();

  constructor(private token: string) {}

  request(): { resumeToken: string } {
    return { resumeToken: this.token };
  }

  accept(event: ProgressEvent): boolean {
    if (event.seq <= (this.lastOf.get(event.version) ?? 0n)) {
      return false;
    }
    this.lastOf.set(event.version, event.seq);
    this.token = event.resumeToken;
    return true;
  }

  finished(event: ProgressEvent): boolean {
    return isBatchDone(event.batchCounts);
  }
}

function requestId(options: StartOptions): string {
  return options.requestId || crypto.randomUUID();
}

function bearer(token: TokenSource): Interceptor {
  return (next) => async (request) => {
    const value = typeof token === "string" ? token : await token();
    if (value) {
      request.header.set("authorization", `Bearer ${value}`);
    }
    return next(request);
  };
}

function callOptions(signal: AbortSignal | undefined, timeoutMs: number): CallOptions {
  return { ...(signal ? { signal } : {}), ...(timeoutMs > 0 ? { timeoutMs } : {}) };
}

/**
 * Whether a failed Progress stream dropped (worth resuming) rather than being refused. The
 * server's own errors always carry an ErrorInfo; a network failure, a cut stream or a proxy's
 * answer carries none, and UNAVAILABLE is the server saying "not now".
 */
function isDropped(error: AtelierError): boolean {
  if (error.code === Code.Unavailable) {
    return true;
  }
  return TRANSPORT_CODES.has(error.code) && error.reason === "";
}

// What a cut connection surfaces as: fetch's network errors are UNKNOWN, a stream cut before its
// end message is a Connect protocol error (INVALID_ARGUMENT), a reset one INTERNAL.
const TRANSPORT_CODES: ReadonlySet<Code> = new Set([Code.Unknown, Code.Internal, Code.InvalidArgument]);

function aborted(name: string, signal: AbortSignal | undefined, cause: unknown): Cancelled {
  const why = signal?.reason instanceof Error ? `: ${signal.reason.message}` : "";
  return new Cancelled(`stopped following ${name}${why}; the job goes on`, {
    code: Code.Canceled,
    reason: "WAIT_ABORTED",
    domain: CLIENT_DOMAIN,
    metadata: { name },
    cause,
  });
}

function waitTimeout(name: string, timeoutMs: number, cause: unknown): WaitTimeout {
  return new WaitTimeout(`${name} did not end within ${timeoutMs} ms; the job goes on`, {
    code: Code.DeadlineExceeded,
    reason: "WAIT_TIMEOUT",
    domain: CLIENT_DOMAIN,
    metadata: { name },
    cause,
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((size, chunk) => size + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
