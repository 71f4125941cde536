// Generate, then follow Progress to the terminal event: Atelier from Node, with no generated code.
//
//   ATELIER_TARGET=127.0.0.1:50051 [ATELIER_TOKEN=...] node generate.mjs "a prompt" [model]
//
// Loads proto/ (and third_party/proto for google/rpc) at run time. Prints the new version's name
// on stderr, then each progress event as one JSON line on stdout. Exits 0 when the version ends
// COMPLETED, 1 when it ends otherwise, 2 when a call fails: then stderr says the status, its
// message, and the error's machine-readable reason and domain (google.rpc.ErrorInfo).
import { randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const definition = protoLoader.loadSync("atelier/v1/atelier_service.proto", {
  includeDirs: [path.join(root, "proto"), path.join(root, "third_party", "proto")],
  keepCase: true, // field names as in the proto (after_seq, total_stages)
  longs: String, // int64 (seq, sizes) as strings, as proto3 JSON does
  enums: String, // VERSION_STATE_COMPLETED rather than 3
  defaults: true,
});
const { AtelierService } = grpc.loadPackageDefinition(definition).atelier.v1;

// Every Atelier error carries a google.rpc.Status in the trailers, with an ErrorInfo among its details.
const rpc = new protobuf.Root();
rpc.resolvePath = (_origin, target) => path.join(root, "third_party", "proto", target);
rpc.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const Status = rpc.lookupType("google.rpc.Status");
const ErrorInfo = rpc.lookupType("google.rpc.ErrorInfo");

function errorInfo(error) {
  const raw = error.metadata?.get("grpc-status-details-bin")?.[0];
  if (!raw) return null;
  for (const detail of Status.decode(raw).details) {
    if (detail.type_url.endsWith("/google.rpc.ErrorInfo")) return ErrorInfo.decode(detail.value);
  }
  return null;
}

const TERMINAL = new Set([
  "VERSION_STATE_COMPLETED",
  "VERSION_STATE_FAILED",
  "VERSION_STATE_CANCELLED",
  "VERSION_STATE_NEEDS_REVIEW",
]);

const target = process.env.ATELIER_TARGET || "127.0.0.1:50051";
const prompt = process.argv[2] || "a python CLI that converts celsius to fahrenheit";
const model = process.argv[3] || "";
const metadata = new grpc.Metadata();
if (process.env.ATELIER_TOKEN) {
  metadata.set("authorization", `Bearer ${process.env.ATELIER_TOKEN}`);
}
const deadline = (seconds) => new Date(Date.now() + seconds * 1000);
const client = new AtelierService(target, grpc.credentials.createInsecure());

function fail(error) {
  const info = errorInfo(error);
  const reason = info ? ` (reason ${info.reason}, domain ${info.domain})` : "";
  process.stderr.write(`${grpc.status[error.code] ?? error.code}: ${error.details || error.message}${reason}\n`);
  client.close();
  process.exit(2);
}

client.Generate(
  { prompt, model, request_id: randomUUID() },
  metadata,
  { deadline: deadline(30) },
  (error, version) => {
    if (error) return fail(error);
    process.stderr.write(`${version.name} ${version.state}\n`);
    let last = null;
    const stream = client.Progress({ name: version.name, after_seq: 0 }, metadata, { deadline: deadline(600) });
    stream.on("data", (event) => {
      last = event;
      process.stdout.write(`${JSON.stringify(event)}\n`);
    });
    stream.on("error", fail);
    stream.on("end", () => {
      client.close();
      const done = last !== null && TERMINAL.has(last.state);
      process.exitCode = done && last.state === "VERSION_STATE_COMPLETED" ? 0 : 1;
    });
  },
);
