// Resource names (AIP-122) and enum labels, so that no caller splits strings of its own.
import { VersionKind, VersionState } from "./gen/atelier/v1/generation_pb.js";

/** The generation a version belongs to: `generations/g/versions/3` -> `generations/g`. */
export function generationOf(version: string): string {
  const match = /^(generations\/[^/]+)(?:\/|$)/.exec(version);
  if (!match?.[1]) {
    throw new TypeError(`not a resource name of a generation or version: ${JSON.stringify(version)}`);
  }
  return match[1];
}

/** A version's number from its name: `generations/g/versions/3` -> 3. */
export function versionNumber(version: string): number {
  const match = /^generations\/[^/]+\/versions\/(\d+)$/.exec(version);
  if (!match?.[1]) {
    throw new TypeError(`not a version name: ${JSON.stringify(version)}`);
  }
  return Number(match[1]);
}

/** `VersionState.NEEDS_REVIEW` -> `NEEDS_REVIEW`. */
export function stateName(state: VersionState): string {
  return VersionState[state] ?? "UNSPECIFIED";
}

/** `VersionKind.REGENERATE` -> `REGENERATE`. */
export function kindName(kind: VersionKind): string {
  return VersionKind[kind] ?? "UNSPECIFIED";
}
