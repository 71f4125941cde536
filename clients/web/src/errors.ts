// Typed errors: the one place where a ConnectError becomes an AtelierError, with the
// google.rpc.ErrorInfo (and BadRequest) the server attached to every failure.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of the server's errors. */
export const ERROR_DOMAIN = "atelier.v1";
/** The domain of errors this client raises itself (a wait that was aborted or timed out). */
export const CLIENT_DOMAIN = "atelier.web";

/** One bad field of a request (google.rpc.BadRequest): which, and what is wrong with it. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

export interface AtelierErrorInit {
  code: Code;
  reason?: string;
  domain?: string;
  metadata?: Record<string, string>;
  fieldViolations?: readonly FieldViolation[];
  cause?: unknown;
}

/**
 * A failed call. `code` is the Connect (= gRPC) status code; `reason`, `domain` and `metadata`
 * come from the server's google.rpc.ErrorInfo (empty when the failure never reached the server,
 * such as a network error). Switch on `reason` for what went wrong: it is stable, the message is
 * for people.
 */
export class AtelierError extends Error {
  override readonly name: string = "AtelierError";
  readonly code: Code;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** For INVALID_ARGUMENT: the fields at fault (google.rpc.BadRequest). */
  readonly fieldViolations: readonly FieldViolation[];

  constructor(message: string, init: AtelierErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.reason = init.reason ?? "";
    this.domain = init.domain ?? "";
    this.metadata = init.metadata ?? {};
    this.fieldViolations = init.fieldViolations ?? [];
  }

  /** The status code's name as gRPC spells it, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return codeName(this.code);
  }

  override toString(): string {
    const reason = this.reason ? ` [${this.reason}]` : "";
    return `${this.codeName}${reason}: ${this.message}`;
  }
}

export class InvalidArgument extends AtelierError {
  override readonly name: string = "InvalidArgument";
}
/** The resource does not exist, or belongs to someone else. */
export class NotFound extends AtelierError {
  override readonly name: string = "NotFound";
}
export class AlreadyExists extends AtelierError {
  override readonly name: string = "AlreadyExists";
}
/** The resource is not in a state that allows the call (e.g. refining a version not COMPLETED). */
export class FailedPrecondition extends AtelierError {
  override readonly name: string = "FailedPrecondition";
}
/** A conflict, such as a stale etag. */
export class Aborted extends AtelierError {
  override readonly name: string = "Aborted";
}
export class PermissionDenied extends AtelierError {
  override readonly name: string = "PermissionDenied";
}
/** No token, or one the server does not know. */
export class Unauthenticated extends AtelierError {
  override readonly name: string = "Unauthenticated";
}
export class ResourceExhausted extends AtelierError {
  override readonly name: string = "ResourceExhausted";
}
/** The server could not be reached, or went away. */
export class Unavailable extends AtelierError {
  override readonly name: string = "Unavailable";
}
/** The call's deadline passed. */
export class DeadlineExceeded extends AtelierError {
  override readonly name: string = "DeadlineExceeded";
}
/** `wait` gave up after its `timeoutMs`: the job itself goes on. */
export class WaitTimeout extends DeadlineExceeded {
  override readonly name: string = "WaitTimeout";
}
/** The call (never the job) was cancelled, e.g. by the caller's AbortSignal. */
export class Cancelled extends AtelierError {
  override readonly name: string = "Cancelled";
}
export class Internal extends AtelierError {
  override readonly name: string = "Internal";
}
export class Unimplemented extends AtelierError {
  override readonly name: string = "Unimplemented";
}

type ErrorClass = new (message: string, init: AtelierErrorInit) => AtelierError;

const BY_CODE: ReadonlyMap<Code, ErrorClass> = new Map<Code, ErrorClass>([
  [Code.InvalidArgument, InvalidArgument],
  [Code.NotFound, NotFound],
  [Code.AlreadyExists, AlreadyExists],
  [Code.FailedPrecondition, FailedPrecondition],
  [Code.Aborted, Aborted],
  [Code.PermissionDenied, PermissionDenied],
  [Code.Unauthenticated, Unauthenticated],
  [Code.ResourceExhausted, ResourceExhausted],
  [Code.Unavailable, Unavailable],
  [Code.DeadlineExceeded, DeadlineExceeded],
  [Code.Canceled, Cancelled],
  [Code.Internal, Internal],
  [Code.Unimplemented, Unimplemented],
]);

/** The typed error for anything a call threw (a ConnectError, or any other failure). */
export function toAtelierError(reason: unknown): AtelierError {
  if (reason instanceof AtelierError) {
    return reason;
  }
  const error = ConnectError.from(reason);
  const [info] = error.findDetails(ErrorInfoSchema);
  const fieldViolations = error
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations.map(({ field, description }) => ({ field, description })));
  const cls = BY_CODE.get(error.code) ?? AtelierError;
  return new cls(error.rawMessage, {
    code: error.code,
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    metadata: info ? { ...info.metadata } : {},
    fieldViolations,
    cause: reason,
  });
}

/** Runs a call; whatever it throws becomes an AtelierError. */
export async function typed<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (reason) {
    throw toAtelierError(reason);
  }
}

/** gRPC's name of a status code: `Code.NotFound` is `NOT_FOUND`. */
export function codeName(code: Code): string {
  return (Code[code] ?? "UNKNOWN").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase().replace("CANCELED", "CANCELLED");
}
