// @atelier/web: the typed client of the Atelier API for browsers (and Node.js), over Connect.
// The generated messages and enums are re-exported from src/gen (made by `make proto`).
export {
  AtelierClient,
  attachmentFromBlob,
  createAtelierClient,
  fileUrl,
  isBatchDone,
  isTerminal,
  pickModel,
  type AtelierClientOptions,
  type AttachmentInput,
  type FanOutOptions,
  type FollowOptions,
  type ReconnectPolicy,
  type RefineOptions,
  type StartOptions,
  type TokenSource,
  type VariantInput,
  type WaitOptions,
} from "./client.js";
export { Code, ConnectError } from "@connectrpc/connect";
export * from "./errors.js";
export * from "./names.js";
export * from "./gen/atelier/v1/atelier_service_pb.js";
export * from "./gen/atelier/v1/batch_pb.js";
export * from "./gen/atelier/v1/cost_pb.js";
export * from "./gen/atelier/v1/blame_pb.js";
export * from "./gen/atelier/v1/draft_pb.js";
export * from "./gen/atelier/v1/file_pb.js";
export * from "./gen/atelier/v1/generation_pb.js";
export * from "./gen/atelier/v1/model_pb.js";
export * from "./gen/atelier/v1/progress_pb.js";
export * from "./gen/atelier/v1/session_pb.js";
export * from "./gen/atelier/v1/tree_pb.js";
export * from "./gen/atelier/v1/upload_pb.js";
