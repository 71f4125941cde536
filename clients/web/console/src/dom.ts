// The few DOM helpers the console needs: find an element by id, make one, and format times.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

/** The element with this id, of the expected type; a missing one is a bug in index.html. */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const element = document.getElementById(id);
  if (!(element instanceof type)) {
    throw new Error(`#${id} is missing from the page`);
  }
  return element;
}

type Child = Node | string | null | undefined | false;

/** A new element: `h("li", { class: "x" }, "text", other)`. Text is always text, never HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) {
      element.setAttribute(name, "");
    } else if (typeof value === "string") {
      element.setAttribute(name, value);
    }
  }
  for (const child of children) {
    if (child) {
      element.append(child);
    }
  }
  return element;
}

/** "in about 12 s" / "in about 3 min" from now, for an estimate; "" for an unset one. */
export function fromNow(time: Timestamp | undefined, now: number = Date.now()): string {
  if (!time) {
    return "";
  }
  const seconds = Math.max(0, Math.round((timestampDate(time).getTime() - now) / 1000));
  if (seconds < 90) {
    return `in about ${seconds} s`;
  }
  return `in about ${Math.round(seconds / 60)} min`;
}

/** A byte count for people: "812 B", "4.1 KiB". */
export function bytes(size: bigint): string {
  const value = Number(size);
  if (value < 1024) {
    return `${value} B`;
  }
  const units = ["KiB", "MiB", "GiB"];
  let scaled = value / 1024;
  let unit = 0;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit += 1;
  }
  return `${scaled.toFixed(1)} ${units[unit]}`;
}
