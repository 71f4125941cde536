// The Atelier console: a page that lists the caller's generations and a dialog (the "studio")
// that drafts a prompt (optionally), starts a generation, follows it stage by stage, shows what
// it made and refines it. Every view of a
// version owns an AbortController: opening another version, going Back or closing aborts it, so
// a late answer about an older version never paints over the current one. Closing never cancels
// the job; only the Cancel button does. A fan-out (several outputs) is shown side by side, each
// output filled in as soon as it ends, from one Progress stream on its batch.
import {
  AtelierError,
  Code,
  FileChange,
  ProgressEventType,
  VersionKind,
  VersionState,
  attachmentFromBlob,
  createAtelierClient,
  fileUrl,
  generationOf,
  isBatchDone,
  isTerminal,
  kindName,
  stateName,
  toAtelierError,
  versionNumber,
  type BatchCounts,
  type FanOutOptions,
  type Draft,
  type File as AtelierFile,
  type ListModelsResponse,
  type ProgressEvent,
  type Version,
} from "../../src/index.js";
import { byId, bytes, fromNow, h, money } from "./dom.js";

const TOKEN_KEY = "atelier.token";

const client = createAtelierClient({
  baseUrl: window.location.origin,
  token: () => localStorage.getItem(TOKEN_KEY) ?? "",
});

const ui = {
  pageError: byId("page-error", HTMLDivElement),
  newGeneration: byId("new-generation", HTMLButtonElement),
  newDraft: byId("new-draft", HTMLButtonElement),
  credentials: byId("credentials", HTMLDetailsElement),
  credentialsForm: byId("credentials-form", HTMLFormElement),
  token: byId("token", HTMLInputElement),
  generations: byId("generations", HTMLUListElement),
  generationsEmpty: byId("generations-empty", HTMLParagraphElement),
  studio: byId("studio", HTMLDialogElement),
  title: byId("studio-title", HTMLHeadingElement),
  studioError: byId("studio-error", HTMLDivElement),
  draftForm: byId("draft-form", HTMLFormElement),
  draftText: byId("draft-text", HTMLTextAreaElement),
  draftContext: byId("draft-context", HTMLInputElement),
  draftModel: byId("draft-model", HTMLSelectElement),
  draftSubmit: byId("draft-submit", HTMLButtonElement),
  draftSkip: byId("draft-skip", HTMLButtonElement),
  form: byId("form", HTMLFormElement),
  draftNote: byId("draft-note", HTMLDivElement),
  draftNoteText: byId("draft-note-text", HTMLParagraphElement),
  draftUnlink: byId("draft-unlink", HTMLButtonElement),
  toDraft: byId("to-draft", HTMLButtonElement),
  prompt: byId("prompt", HTMLTextAreaElement),
  model: byId("model", HTMLSelectElement),
  attachments: byId("attachments", HTMLInputElement),
  count: byId("count", HTMLInputElement),
  variants: byId("variants", HTMLInputElement),
  estimate: byId("estimate", HTMLParagraphElement),
  generate: byId("generate", HTMLButtonElement),
  batchRun: byId("batch-run", HTMLDivElement),
  batchTitle: byId("batch-title", HTMLParagraphElement),
  batchStatus: byId("batch-status", HTMLParagraphElement),
  batchOutputs: byId("batch-outputs", HTMLUListElement),
  batchBack: byId("batch-back", HTMLButtonElement),
  batchCancel: byId("batch-cancel", HTMLButtonElement),
  batchClose: byId("batch-close", HTMLButtonElement),
  showBatch: byId("show-batch", HTMLButtonElement),
  run: byId("run", HTMLDivElement),
  versionTitle: byId("version-title", HTMLParagraphElement),
  status: byId("status", HTMLParagraphElement),
  stages: byId("stages", HTMLProgressElement),
  queue: byId("queue", HTMLParagraphElement),
  messages: byId("messages", HTMLOListElement),
  outputs: byId("outputs", HTMLElement),
  media: byId("media", HTMLDivElement),
  fileTree: byId("file-tree", HTMLUListElement),
  viewer: byId("viewer", HTMLElement),
  viewerPath: byId("viewer-path", HTMLElement),
  viewerCode: byId("viewer-code", HTMLElement),
  viewerBlame: byId("viewer-blame", HTMLParagraphElement),
  cancel: byId("cancel", HTMLButtonElement),
  back: byId("back", HTMLButtonElement),
  regenerate: byId("regenerate", HTMLButtonElement),
  close: byId("close", HTMLButtonElement),
  closeBottom: byId("close-bottom", HTMLButtonElement),
  refine: byId("refine", HTMLFormElement),
  refinePrompt: byId("refine-prompt", HTMLInputElement),
  lineage: byId("lineage", HTMLElement),
  versionTree: byId("version-tree", HTMLUListElement),
  diffForm: byId("diff-form", HTMLFormElement),
  diffBase: byId("diff-base", HTMLSelectElement),
  diffTarget: byId("diff-target", HTMLSelectElement),
  diff: byId("diff", HTMLDivElement),
};

/** The version the studio shows, and the controller that ends everything done for it. */
let view: { version: Version; controller: AbortController } | undefined;
/** The batch the studio shows side by side, its outputs' cards, and what Back puts in the form. */
let batchView:
  | { name: string; back: FormSettings; controller: AbortController; cards: Map<string, HTMLLIElement> }
  | undefined;

/** What the form starts with: a prompt, a model, and a fan-out (one output when absent). */
interface FormSettings {
  prompt?: string;
  model?: string;
  fanOut?: { variants?: readonly string[]; count?: number };
}
let models: Promise<ListModelsResponse> | undefined;
/** The draft the form's prompt came from: Generate names it, so the version records it. */
let linkedDraft: Draft | undefined;

// The page: the caller's generations, newest first.

async function loadGenerations(): Promise<void> {
  try {
    // The first page only (the newest), and each one's latest version, all at once.
    const page = await client.raw.listGenerations({ pageSize: 20 }).catch((error: unknown) => {
      throw toAtelierError(error);
    });
    const latest = await Promise.all(
      page.generations.map((generation) =>
        generation.latestVersion ? client.getVersion(generation.latestVersion) : undefined,
      ),
    );
    const items = page.generations.map((generation, index) => {
      const state = latest[index] ? stateName(latest[index].state) : "";
      const button = h(
        "button",
        { type: "button", "aria-label": `Open “${generation.prompt}”` },
        `Open (v${generation.versionCount})`,
      );
      button.addEventListener("click", () => void openVersion(generation.latestVersion));
      return h(
        "li",
        { "data-generation": generation.name },
        h("span", { class: "state", "data-state": state }, state.replace("_", " ").toLowerCase()),
        h("span", { class: "prompt" }, generation.prompt),
        button,
      );
    });
    ui.generations.replaceChildren(...items);
    ui.generationsEmpty.hidden = items.length > 0;
    showError(ui.pageError, undefined);
  } catch (error) {
    showError(ui.pageError, error);
  }
}

// The studio's form.

function loadModels(): Promise<ListModelsResponse> {
  models ??= client.listModels().catch((error: unknown) => {
    models = undefined; // ask again next time
    throw error;
  });
  return models;
}

async function openForm(settings: FormSettings & { draft?: Draft } = {}): Promise<void> {
  openStep("form", "New generation");
  if (settings.prompt !== undefined) {
    ui.prompt.value = settings.prompt;
  }
  ui.variants.value = (settings.fanOut?.variants ?? []).join(", ");
  ui.count.value = String(settings.fanOut?.count ?? 1);
  ui.count.disabled = ui.variants.value !== "";
  linkDraft(settings.draft);
  ui.prompt.focus();
  await fillModels(ui.model, settings.model);
}

/** The model choices from ListModels, `chosen` (else the current choice, else the default) selected. */
async function fillModels(select: HTMLSelectElement, chosen?: string): Promise<void> {
  try {
    const offered = await loadModels();
    // The server says how many outputs a fan-out may have: the browser holds the form to it.
    const most = offered.limits?.maxBatchSize ?? 0;
    if (most > 0) {
      ui.count.max = String(most);
    }
    const selected = chosen || select.value || offered.defaultModel;
    select.replaceChildren(
      ...offered.models.map((model) =>
        h(
          "option",
          { value: model.name, selected: model.name === selected },
          `${model.displayName || model.name}${model.name === offered.defaultModel ? " (default)" : ""}`,
        ),
      ),
    );
    showError(ui.studioError, undefined);
    await updateEstimate();
  } catch (error) {
    showError(ui.studioError, error);
  }
}

/** The form's fan-out: its variants, else a count above one, else nothing (one output). */
function fanOutOfForm(): FanOutOptions & { variants?: string[] } {
  const variants = ui.variants.value
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  if (variants.length) {
    return { variants };
  }
  const count = Number(ui.count.value);
  return Number.isInteger(count) && count > 1 ? { count } : {};
}

// The estimate follows the form: each change asks again (once typing pauses), and an answer to an
// older question is dropped.
let estimateTimer: ReturnType<typeof setTimeout> | undefined;
let estimating: AbortController | undefined;

function estimateSoon(): void {
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(() => void updateEstimate(), 250);
}

async function updateEstimate(): Promise<void> {
  clearTimeout(estimateTimer);
  estimating?.abort();
  const controller = new AbortController();
  estimating = controller;
  if (!ui.prompt.value.trim() || !ui.model.value) {
    ui.estimate.textContent = "";
    return;
  }
  try {
    // The attachments are priced too, as the model would be sent them.
    const attachments = await Promise.all([...(ui.attachments.files ?? [])].map((file) => attachmentFromBlob(file)));
    const estimate = await client.estimateCost(ui.prompt.value, {
      model: ui.model.value,
      attachments,
      ...fanOutOfForm(),
      signal: controller.signal,
    });
    if (controller.signal.aborted) {
      return;
    }
    const outputs = Number(estimate.outputs);
    ui.estimate.textContent =
      `Estimated cost: ${money(estimate.cost, estimate.currency)} ` +
      `for ${outputs} output${outputs === 1 ? "" : "s"} on ${estimate.model}`;
  } catch (error) {
    if (!controller.signal.aborted) {
      ui.estimate.textContent = `No estimate: ${errorText(error)}`;
    }
  }
}

ui.prompt.addEventListener("input", estimateSoon);
ui.model.addEventListener("change", () => void updateEstimate());
ui.attachments.addEventListener("change", () => void updateEstimate());
ui.count.addEventListener("input", estimateSoon);
ui.variants.addEventListener("input", () => {
  ui.count.disabled = ui.variants.value.trim() !== "";
  estimateSoon();
});

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  void busy(ui.generate, async () => {
    const attachments = await Promise.all([...(ui.attachments.files ?? [])].map((file) => attachmentFromBlob(file)));
    const prompt = ui.prompt.value;
    const draft = linkedDraft;
    if (draft && prompt !== draft.prompt) {
      // The draft keeps the edit too (its drafted_prompt keeps the model's words).
      linkedDraft = await client.updateDraft(draft.name, prompt, { etag: draft.etag });
    }
    const fanOut = fanOutOfForm();
    const version = await client.generate(prompt, {
      model: ui.model.value,
      attachments,
      ...fanOut,
      ...(draft ? { draft: draft.name } : {}),
    });
    if (version.batch) {
      await showBatch(version.batch, { prompt, model: ui.model.value, fanOut });
    } else {
      await showVersion(version);
    }
  });
});

// The studio showing a fan-out's outputs side by side.

async function showBatch(name: string, back: FormSettings): Promise<void> {
  stopView();
  const controller = new AbortController();
  const cards = new Map<string, HTMLLIElement>();
  batchView = { name, back, controller, cards };
  const { signal } = controller;
  showStep("batch");
  ui.batchOutputs.replaceChildren();
  ui.batchStatus.textContent = "";
  ui.batchCancel.hidden = true;
  try {
    const batch = await client.getBatch(name, { signal });
    const first = batch.versions[0];
    if (signal.aborted || !first) {
      return;
    }
    ui.title.textContent = `${batch.versions.length} outputs of “${truncate(back.prompt ?? first.prompt, 60)}”`;
    ui.batchTitle.textContent = `${first.model} · ${name}`;
    for (const version of batch.versions) {
      cards.set(version.name, outputCard(version));
    }
    ui.batchOutputs.replaceChildren(...cards.values());
    if (batch.counts) {
      showCounts(batch.counts);
    }
    ui.title.focus();
    // One stream for every output; each card is filled in as soon as its output ends.
    for await (const event of client.progress(name, { signal })) {
      if (event.batchCounts) {
        showCounts(event.batchCounts);
      }
      const card = cards.get(event.version);
      if (!card) {
        continue;
      }
      if (isTerminal(event.state)) {
        void fillCard(card, event.version, signal);
      } else {
        card.dataset["state"] = stateName(event.state);
        setText(card, ".output-state", event.totalStages ? `Stage ${event.stage} of ${event.totalStages}` : capitalize(stateName(event.state)));
      }
    }
  } catch (error) {
    if (!signal.aborted) {
      showError(ui.studioError, error);
    }
  }
}

function outputCard(version: Version): HTMLLIElement {
  const label = version.variant || String(version.number);
  const heading = `output-${version.number}`;
  const open = h("button", { type: "button", "aria-label": `Open version ${version.number} (${label})` }, `Open v${version.number}`);
  open.addEventListener("click", () => void openVersion(version.name));
  return h(
    "li",
    { "data-version": version.name, "data-state": stateName(version.state), "aria-labelledby": heading },
    h("h3", { id: heading }, `${label} · v${version.number}`),
    h("p", { class: "output-state" }, stateText(version)),
    h("div", { class: "media" }),
    open,
  );
}

async function fillCard(card: HTMLLIElement, name: string, signal: AbortSignal): Promise<void> {
  try {
    const version = await client.getVersion(name, { signal });
    const files: AtelierFile[] = [];
    if (version.state === VersionState.COMPLETED || version.state === VersionState.NEEDS_REVIEW) {
      for await (const file of client.listFiles(name, { signal })) {
        files.push(file);
      }
    }
    if (signal.aborted) {
      return;
    }
    card.dataset["state"] = stateName(version.state);
    setText(card, ".output-state", stateText(version));
    const pictures = files.filter((file) => file.mimeType.startsWith("image/"));
    const others = files.filter((file) => !file.mimeType.startsWith("image/"));
    const list = h("ul", { class: "file-list", "aria-label": "Files" }, ...others.map((file) => h("li", {}, file.path)));
    card.querySelector(".media")?.replaceChildren(
      ...pictures.map((file) => mediaFigure(version, file, "image")),
      ...(others.length ? [list] : []),
    );
  } catch (error) {
    if (!signal.aborted) {
      showError(ui.studioError, error);
    }
  }
}

function showCounts(counts: BatchCounts): void {
  const parts = (
    [
      [counts.completed, "completed"],
      [counts.needsReview, "need review"],
      [counts.failed, "failed"],
      [counts.cancelled, "cancelled"],
      [counts.running, "running"],
      [counts.queued, "queued"],
    ] as const
  )
    .filter(([count]) => count > 0n)
    .map(([count, word]) => `${count} ${word}`);
  const ended = counts.total - counts.running - counts.queued;
  ui.batchCancel.hidden = isBatchDone(counts);
  ui.batchStatus.textContent = `${isBatchDone(counts) ? "Done" : `${ended} of ${counts.total} ended`}: ${parts.join(", ")}`;
  ui.batchStatus.dataset["state"] = isBatchDone(counts) ? (counts.completed === counts.total ? "COMPLETED" : "FAILED") : "RUNNING";
}

/** Whether a card's output has ended: its `data-state` names a terminal state. */
function cardEnded(card: HTMLLIElement): boolean {
  const state = VersionState[(card.dataset["state"] ?? "") as keyof typeof VersionState];
  return state !== undefined && isTerminal(state);
}

function setText(root: HTMLElement, selector: string, text: string): void {
  const element = root.querySelector(selector);
  if (element) {
    element.textContent = text;
  }
}

// The draft step: the caller's idea, a style or context, and the model it is for go to
// DraftPrompt; the drafted prompt opens in the form, to be edited before Generate.

async function openDraft(settings: { text?: string; model?: string } = {}): Promise<void> {
  openStep("draft", "Draft a prompt");
  if (settings.text !== undefined) {
    ui.draftText.value = settings.text;
  }
  ui.draftText.focus();
  await fillModels(ui.draftModel, settings.model);
}

ui.draftForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void busy(ui.draftSubmit, async () => {
    const draft = await client.draftPrompt(ui.draftText.value, {
      context: ui.draftContext.value,
      model: ui.draftModel.value,
    });
    await openForm({ prompt: draft.prompt, model: draft.model, draft });
  });
});

function linkDraft(draft: Draft | undefined): void {
  linkedDraft = draft;
  ui.draftNote.hidden = !draft;
  ui.draftNoteText.textContent = draft
    ? `Drafted by ${draft.drafterModel} for ${draft.model} (${draft.name}). Edit it as you like: the version records the draft.`
    : "";
}

ui.draftUnlink.addEventListener("click", () => {
  linkDraft(undefined);
  ui.prompt.focus();
});
ui.draftSkip.addEventListener("click", () => void openForm({ prompt: ui.draftText.value, model: ui.draftModel.value }));
ui.toDraft.addEventListener("click", () => void openDraft({ text: ui.prompt.value, model: ui.model.value }));

// The studio following one version.

async function openVersion(name: string): Promise<void> {
  try {
    const version = await client.getVersion(name);
    if (!ui.studio.open) {
      ui.studio.showModal();
    }
    await showVersion(version);
  } catch (error) {
    showError(ui.pageError, error);
  }
}

async function showVersion(version: Version): Promise<void> {
  stopView();
  const controller = new AbortController();
  view = { version, controller };
  const { signal } = controller;
  ui.title.textContent = `Version ${version.number} of “${truncate(version.prompt, 60)}”`;
  const drafted = version.draft ? ` · from ${version.draft}` : "";
  ui.versionTitle.textContent = `${kindName(version.kind).toLowerCase()} · ${version.model} · ${version.name}${drafted}`;
  ui.messages.replaceChildren();
  ui.media.replaceChildren();
  ui.fileTree.replaceChildren();
  ui.viewer.hidden = true;
  ui.outputs.hidden = true;
  ui.diff.replaceChildren();
  showStep("run");
  showState(version);
  ui.title.focus();
  void loadLineage(version, signal);
  try {
    // From the first event: the log shows the version's whole story, live ones as they come.
    for await (const event of client.progress(version.name, { signal })) {
      showEvent(event);
    }
    const final = await client.getVersion(version.name, { signal });
    if (signal.aborted) {
      return;
    }
    view = { version: final, controller };
    showState(final);
    await Promise.all([showOutputs(final, signal), loadLineage(final, signal)]);
  } catch (error) {
    if (!signal.aborted) {
      showError(ui.studioError, error);
    }
  }
}

function stopView(): void {
  view?.controller.abort(new Error("the view changed"));
  view = undefined;
  batchView?.controller.abort(new Error("the view changed"));
  batchView = undefined;
  showError(ui.studioError, undefined);
}

/** "Queued", "Stage 2 of 4", "Completed: 2 files", "Failed: why". */
function stateText(version: Version): string {
  const state = stateName(version.state);
  const total = version.totalStages;
  if (version.state === VersionState.QUEUED) {
    return "Queued";
  }
  if (version.state === VersionState.RUNNING) {
    return total ? `Stage ${version.stage} of ${total}` : "Running";
  }
  if (version.state === VersionState.COMPLETED) {
    return `Completed: ${version.fileCount} file${version.fileCount === 1n ? "" : "s"}`;
  }
  const why = version.error?.message ? `: ${version.error.message}` : "";
  return `${state === "NEEDS_REVIEW" ? "Needs review" : capitalize(state)}${why}`;
}

function showState(version: Version): void {
  ui.status.dataset["state"] = stateName(version.state);
  ui.status.textContent = stateText(version);
  const total = version.totalStages;
  ui.stages.max = Math.max(1, total);
  ui.stages.value = isTerminal(version.state) ? ui.stages.max : Math.max(0, version.stage - 1);
  showQueue(version.queuePosition, version.estimatedStartTime, version.estimatedCompleteTime);
  const running = !isTerminal(version.state);
  ui.cancel.hidden = !running;
  ui.regenerate.hidden =
    running || version.kind === VersionKind.UPLOAD || version.kind === VersionKind.MERGE;
  ui.refine.hidden = !(version.state === VersionState.COMPLETED || version.state === VersionState.NEEDS_REVIEW);
  ui.showBatch.hidden = !version.batch;
}

function showEvent(event: ProgressEvent): void {
  const stage = event.totalStages ? `Stage ${event.stage} of ${event.totalStages}` : "";
  switch (event.type) {
    case ProgressEventType.STAGE_STARTED:
    case ProgressEventType.STAGE_DONE:
      ui.status.textContent = `${stage}: ${event.message.replace(/\s*\(\d+\/\d+\)$/, "")}`;
      ui.status.dataset["state"] = stateName(event.state);
      ui.stages.max = Math.max(1, event.totalStages);
      ui.stages.value = event.type === ProgressEventType.STAGE_DONE ? event.stage : event.stage - 1;
      break;
    case ProgressEventType.QUEUED:
      showQueue(event.queuePosition, event.estimatedStartTime, event.estimatedCompleteTime);
      break;
    case ProgressEventType.OUTPUT:
      // This version's paths only: the server never sends another version's.
      ui.outputs.hidden = false;
      ui.fileTree.replaceChildren(...event.paths.map((path) => h("li", {}, h("span", {}, path))));
      break;
    case ProgressEventType.STATE:
      if (event.state !== VersionState.QUEUED) {
        ui.queue.hidden = true;
      }
      if (isTerminal(event.state)) {
        ui.cancel.hidden = true;
      }
      break;
    default:
      break;
  }
  const text = event.type === ProgressEventType.OUTPUT ? `produced ${event.paths.join(", ")}` : event.message;
  if (text) {
    ui.messages.append(h("li", { "data-seq": String(event.seq) }, text));
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }
}

function showQueue(position: bigint, start: Parameters<typeof fromNow>[0], end: Parameters<typeof fromNow>[0]): void {
  if (!position) {
    ui.queue.hidden = true;
    return;
  }
  const parts = [`Position ${position} in the queue`];
  if (start) {
    parts.push(`starts ${fromNow(start)}`);
  }
  if (end) {
    parts.push(`done ${fromNow(end)}`);
  }
  ui.queue.textContent = parts.join(" · ");
  ui.queue.hidden = false;
}

// What a finished version made: pictures, players, and the file tree with a code viewer.

async function showOutputs(version: Version, signal: AbortSignal): Promise<void> {
  if (version.state !== VersionState.COMPLETED && version.state !== VersionState.NEEDS_REVIEW) {
    return;
  }
  const files: AtelierFile[] = [];
  // With blame: the viewer says which version last changed each file.
  for await (const file of client.listFiles(version.name, { signal, blame: true })) {
    files.push(file);
  }
  if (signal.aborted) {
    return;
  }
  ui.media.replaceChildren(
    ...files.flatMap((file) => {
      const kind = file.mimeType.split("/")[0] ?? "";
      return ["image", "audio", "video"].includes(kind) ? [mediaFigure(version, file, kind)] : [];
    }),
  );
  ui.fileTree.replaceChildren(
    ...files.map((file) => {
      const button = h(
        "button",
        { type: "button", "data-path": file.path, "aria-label": `${file.path}, ${bytes(file.size)}` },
        file.path,
      );
      button.addEventListener("click", () => void viewFile(file, button, signal));
      return h("li", {}, button);
    }),
  );
  ui.outputs.hidden = files.length === 0;
  const first = files.find((file) => isText(file)) ?? files[0];
  const button = first ? ui.fileTree.querySelector<HTMLButtonElement>(`[data-path="${CSS.escape(first.path)}"]`) : null;
  if (first && button) {
    await viewFile(first, button, signal);
  }
}

function mediaFigure(version: Version, file: AtelierFile, kind: string): HTMLElement {
  const caption = h("figcaption", {}, `${file.path} · ${bytes(file.size)}`);
  if (kind === "image") {
    // A thumbnail no wider than it is shown (the server never enlarges one), linking the original.
    const size = file.width ? { width: String(Math.min(file.width, 384)), height: "" } : {};
    if (file.width && file.height) {
      size.height = String(Math.round((file.height * Number(size.width)) / file.width));
    }
    const img = h("img", { src: fileUrl(file, { width: 384 }), alt: `${file.path}, made by version ${version.number}`, ...size });
    return h("figure", {}, h("a", { href: fileUrl(file), target: "_blank", rel: "noopener" }, img), caption);
  }
  const player = h(kind === "audio" ? "audio" : "video", { src: fileUrl(file), controls: true, preload: "metadata" });
  return h("figure", {}, player, caption);
}

async function viewFile(file: AtelierFile, button: HTMLButtonElement, signal: AbortSignal): Promise<void> {
  for (const other of ui.fileTree.querySelectorAll("button")) {
    other.removeAttribute("aria-current");
  }
  button.setAttribute("aria-current", "true");
  ui.viewerPath.textContent = `${file.path} · ${file.mimeType} · ${bytes(file.size)}`;
  const blame = file.blame;
  ui.viewerBlame.textContent = blame
    ? `Last changed in v${versionNumber(blame.version)} (${kindName(blame.kind).toLowerCase()})` +
      (blame.prompt ? `: “${truncate(blame.prompt, 80)}”` : "")
    : "";
  if (!isText(file)) {
    ui.viewerCode.textContent = "(binary file: not shown)";
  } else {
    // By its URL, which the browser caches (its ETag is the content's hash).
    const response = await fetch(fileUrl(file), { signal });
    const text = await response.text();
    if (signal.aborted) {
      return;
    }
    ui.viewerCode.textContent = response.ok ? text : `(${response.status}: ${text.trim()})`;
  }
  ui.viewer.hidden = false;
}

function isText(file: AtelierFile): boolean {
  return (
    file.mimeType.startsWith("text/") ||
    /(json|xml|javascript|toml|yaml|x-python|x-sh|sql)/.test(file.mimeType) ||
    /\.(md|py|ts|js|toml|ya?ml|json|txt|cfg|ini|html|css|sh)$/.test(file.path)
  );
}

// Lineage: the version tree, any version can be opened, tweaked or iterated; and Diff.

async function loadLineage(version: Version, signal: AbortSignal): Promise<void> {
  try {
    const versions: Version[] = [];
    for await (const item of client.listVersions(generationOf(version.name), { signal })) {
      versions.push(item);
    }
    if (signal.aborted) {
      return;
    }
    const children = new Map<string, Version[]>();
    for (const item of versions) {
      const siblings = children.get(item.parent) ?? [];
      siblings.push(item);
      children.set(item.parent, siblings);
    }
    const branch = (parent: string): HTMLElement[] =>
      (children.get(parent) ?? []).map((item) => {
        const button = h(
          "button",
          {
            type: "button",
            "data-version": item.name,
            "aria-current": item.name === version.name ? "true" : undefined,
          },
          `v${item.number} ${kindName(item.kind).toLowerCase()}`,
          " ",
          h("span", { class: "state" }, stateName(item.state).toLowerCase()),
          " ",
          truncate(item.prompt, 48),
        );
        button.addEventListener("click", () => void showVersion(item));
        const nested = branch(item.name);
        return h("li", {}, button, nested.length ? h("ul", {}, ...nested) : null);
      });
    ui.versionTree.replaceChildren(...branch(""));
    ui.lineage.hidden = versions.length === 0;
    const options = (selected: string): HTMLOptionElement[] =>
      versions.map((item) => h("option", { value: item.name, selected: item.name === selected }, `v${item.number}`));
    ui.diffBase.replaceChildren(...options(version.parent || version.name));
    ui.diffTarget.replaceChildren(...options(version.name));
  } catch (error) {
    if (!signal.aborted) {
      showError(ui.studioError, error);
    }
  }
}

ui.diffForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const signal = view?.controller.signal;
  void (async () => {
    try {
      const answer = await client.diff(ui.diffBase.value, ui.diffTarget.value, { signal });
      if (signal?.aborted) {
        return;
      }
      const heading = h(
        "p",
        {},
        `v${versionNumber(ui.diffBase.value)} → v${versionNumber(ui.diffTarget.value)}: `,
        answer.files.length ? `${answer.files.length} changed file${answer.files.length === 1 ? "" : "s"}` : "no changes",
      );
      ui.diff.replaceChildren(
        heading,
        ...answer.files.map((file) => {
          const change = FileChange[file.change]?.toLowerCase() ?? "changed";
          return h(
            "details",
            { open: true },
            h("summary", {}, `${change}: ${file.path}`),
            file.unifiedDiff ? diffBlock(file.unifiedDiff) : null,
          );
        }),
      );
    } catch (error) {
      showError(ui.studioError, error);
    }
  })();
});

function diffBlock(text: string): HTMLPreElement {
  return h(
    "pre",
    { tabindex: "0" },
    ...text.split("\n").map((line) =>
      h(
        "span",
        { class: line.startsWith("+") && !line.startsWith("+++") ? "added" : line.startsWith("-") && !line.startsWith("---") ? "removed" : undefined },
        `${line}\n`,
      ),
    ),
  );
}

// The buttons.

ui.cancel.addEventListener("click", () => {
  const current = view?.version;
  if (current) {
    void busy(ui.cancel, async () => {
      await client.cancel(current.name);
    });
  }
});

ui.back.addEventListener("click", () => {
  const current = view?.version;
  void openForm(current ? { prompt: current.prompt, model: current.model } : {});
});

ui.showBatch.addEventListener("click", () => {
  const current = view?.version;
  if (current?.batch) {
    void showBatch(current.batch, { prompt: current.prompt, model: current.model });
  }
});

ui.batchBack.addEventListener("click", () => void openForm(batchView?.back ?? {}));
ui.batchClose.addEventListener("click", closeStudio);
ui.batchCancel.addEventListener("click", () => {
  const shown = batchView;
  if (!shown) {
    return;
  }
  // Every output still queued or running; one that ends meanwhile is already where Cancel leads.
  const open = [...shown.cards].filter(([, card]) => !cardEnded(card)).map(([name]) => name);
  void busy(ui.batchCancel, async () => {
    await Promise.all(
      open.map((name) =>
        client.cancel(name).catch((error: unknown) => {
          if (toAtelierError(error).reason !== "VERSION_ALREADY_ENDED") {
            throw error;
          }
        }),
      ),
    );
  });
});

ui.regenerate.addEventListener("click", () => {
  const current = view?.version;
  if (current) {
    void busy(ui.regenerate, async () => showVersion(await client.regenerate(current.name)));
  }
});

ui.refine.addEventListener("submit", (event) => {
  event.preventDefault();
  const current = view?.version;
  const submitter = (event as SubmitEvent).submitter;
  if (!current || !(submitter instanceof HTMLButtonElement)) {
    return;
  }
  const prompt = ui.refinePrompt.value;
  void busy(submitter, async () => {
    const version =
      submitter.value === "iterate"
        ? await client.iterate(current.name, prompt)
        : await client.tweak(current.name, prompt);
    ui.refinePrompt.value = "";
    await showVersion(version);
  });
});

function closeStudio(): void {
  stopView(); // stops following; the job goes on
  if (ui.studio.open) {
    ui.studio.close();
  }
  void loadGenerations();
  ui.newGeneration.focus();
}

ui.close.addEventListener("click", closeStudio);
ui.closeBottom.addEventListener("click", closeStudio);
ui.studio.addEventListener("cancel", (event) => {
  event.preventDefault(); // Escape: the same Close, which never cancels the job
  closeStudio();
});
ui.newGeneration.addEventListener("click", () => void openForm({ prompt: "" }));
ui.newDraft.addEventListener("click", () => void openDraft({ text: "" }));

ui.token.value = localStorage.getItem(TOKEN_KEY) ?? "";
ui.credentialsForm.addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(TOKEN_KEY, ui.token.value.trim());
  models = undefined;
  ui.credentials.open = false;
  void loadGenerations();
});

// Helpers.

/** Opens the studio on a step that starts something (no version followed any more). */
function openStep(step: "draft" | "form", title: string): void {
  stopView();
  ui.title.textContent = title;
  showStep(step);
  if (!ui.studio.open) {
    ui.studio.showModal();
  }
}

function showStep(step: "draft" | "form" | "run" | "batch"): void {
  ui.draftForm.hidden = step !== "draft";
  ui.form.hidden = step !== "form";
  ui.run.hidden = step !== "run";
  ui.batchRun.hidden = step !== "batch";
}

async function busy(button: HTMLButtonElement, work: () => Promise<unknown>): Promise<void> {
  button.disabled = true;
  showError(ui.studioError, undefined);
  try {
    await work();
  } catch (error) {
    showError(ui.studioError, error);
  } finally {
    button.disabled = false;
  }
}

function showError(region: HTMLElement, error: unknown): void {
  if (error === undefined) {
    region.hidden = true;
    region.textContent = "";
    return;
  }
  const text = errorText(error);
  region.textContent = text;
  region.hidden = false;
  if (error instanceof AtelierError && error.code === Code.Unauthenticated) {
    ui.credentials.open = true;
    region.textContent = `${text}. Enter a token or API key under Credentials.`;
  }
}

function errorText(error: unknown): string {
  return error instanceof AtelierError
    ? `${error.message}${error.reason ? ` (${error.reason})` : ""}`
    : error instanceof Error
      ? error.message
      : String(error);
}

function capitalize(text: string): string {
  return text.charAt(0) + text.slice(1).toLowerCase().replace("_", " ");
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

void loadGenerations();
