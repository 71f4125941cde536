// The real Atelier server in a subprocess, for the tests: SQLite in a temporary directory, the
// scripted provider (slow, failing or queued jobs on demand) beside the offline one (the default
// model), its web port on a free port. Nothing of the server is mocked.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..", "..");
export const TOKEN = "alice-token";
// The server's models: the offline one (the default, priced per image), the scripted one, and a
// scripted one that runs one job at a time, so that a second job waits in its queue.
const MODELS = `
[[models]]
name = "offline"
provider = "offline"
display_name = "Offline (deterministic, no network)"
output_modalities = ["text", "image"]
# A price per image, so that estimates are easy to check: $0.04 an output.
image_price = 0.04
estimated_images = 1

[[models]]
name = "scripted"
provider = "scripted"

[[models]]
name = "one-at-a-time"
provider = "scripted"
display_name = "One at a time"
max_concurrent = 1
requests_per_minute = 600
`;

/** The Python that runs the server: `ATELIER_PYTHON` (pytest passes its own), else the venv's. */
const PYTHON = process.env["ATELIER_PYTHON"] || join(ROOT, ".venv", "bin", "python");

export interface ServerOptions {
  /** Settings beyond the defaults below, as `ATELIER_*` variables. */
  env?: Record<string, string>;
  /** The web port; a free one by default (a restart passes the same one again). */
  webPort?: number;
  /** The directory of the database and log (a new temporary one by default). */
  directory?: string;
}

export class ServerProcess {
  private process: ChildProcess | undefined;
  private offset = 0;

  private constructor(
    readonly directory: string,
    readonly webPort: number,
    private readonly env: Record<string, string>,
  ) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.webPort}`;
  }

  get logPath(): string {
    return join(this.directory, "server.log");
  }

  static async start(options: ServerOptions = {}): Promise<ServerProcess> {
    const directory = options.directory ?? mkdtempSync(join(tmpdir(), "atelier-web-"));
    const server = new ServerProcess(directory, options.webPort ?? (await freePort()), options.env ?? {});
    await server.start();
    return server;
  }

  /** Starts (again, after `kill`) on the same web port and database; resolves once it answers. */
  async start(timeoutMs = 30_000): Promise<void> {
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => !/^(ATELIER_|GEMINI_|GOOGLE_)/.test(key)),
    );
    const config = join(this.directory, "atelier.toml");
    writeFileSync(config, MODELS);
    const log = openSync(this.logPath, "a");
    this.offset = this.log().length;
    this.process = spawn(PYTHON, ["-m", "server"], {
      cwd: ROOT,
      stdio: ["ignore", log, log],
      env: {
        ...inherited,
        ATELIER_LISTEN: "127.0.0.1:0",
        ATELIER_WEB_LISTEN: `127.0.0.1:${this.webPort}`,
        ATELIER_DATABASE_URL: `sqlite:///${join(this.directory, "atelier.db")}`,
        ATELIER_CONFIG: config,
        ATELIER_PROVIDER: "scripted",
        ATELIER_DEFAULT_MODEL: "offline",
        ATELIER_TOKENS: `${TOKEN}:alice`,
        ATELIER_JOB_LEASE_SECONDS: "2",
        ATELIER_JOB_HEARTBEAT_SECONDS: "0.5",
        ATELIER_PROGRESS_POLL_SECONDS: "0.5",
        ATELIER_SHUTDOWN_GRACE_SECONDS: "1",
        ATELIER_LOG_LEVEL: "INFO",
        // Not the default (16), so that a client shown 12 was told it by this server.
        ATELIER_MAX_BATCH_SIZE: "12",
        ...this.env,
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.process.exitCode !== null) {
        throw new Error(`the server exited with ${this.process.exitCode}:\n${this.log().slice(this.offset)}`);
      }
      if (await this.answers()) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.kill();
    throw new Error(`the server did not answer on ${this.baseUrl} in ${timeoutMs} ms:\n${this.log()}`);
  }

  /** SIGKILL: a crash, with no goodbye to the streams it serves. */
  kill(): void {
    if (this.process && this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill("SIGKILL");
    }
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    const process = this.process;
    if (process && process.exitCode === null && process.signalCode === null) {
      const exited = new Promise((resolve) => process.once("exit", resolve));
      process.kill("SIGKILL");
      await exited;
    }
    rmSync(this.directory, { recursive: true, force: true });
  }

  log(): string {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  private async answers(): Promise<boolean> {
    try {
      const response = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      return response.ok;
    } catch {
      return false;
    }
  }
}

/** A port nobody listens on now (the server binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}
