// Mailpit (github.com/axllent/mailpit, pinned in e2e/mailpit/go.mod): a real
// SMTP server with an HTTP API, for the tests that follow a mail from the
// outbox to a mailbox. It is built once with `go build` into the user's
// cache and started on loopback ports picked by the kernel; it can be
// stopped and started again on the same ports (the delivery fault test).
import { spawn, execFile } from "node:child_process";
import { createServer } from "node:net";
import { createWriteStream } from "node:fs";
import { access, mkdir, rename } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { artifactsDir, repoRoot } from "./servers.js";

const exec = promisify(execFile);

/** The pinned version (e2e/mailpit/go.mod): the cached binary is named by it. */
export const mailpitVersion = "v1.33.1";

/** Builds Mailpit once (go build from the module cache); returns the binary's path. */
export async function buildMailpit() {
  const dir = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "tollgate-e2e");
  const bin = join(dir, `mailpit-${mailpitVersion}`);
  try {
    await access(bin);
    return bin;
  } catch {
    // not built yet
  }
  await mkdir(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  await exec("go", ["build", "-o", tmp, "github.com/axllent/mailpit"], { cwd: join(repoRoot, "e2e", "mailpit"), timeout: 600_000 });
  await rename(tmp, bin); // whole or not at all, should two runs build at once
  return bin;
}

/** A loopback port that the kernel picked and that was free a moment ago. */
export async function freePort() {
  const srv = createServer();
  await new Promise((res, rej) => srv.listen(0, "127.0.0.1", res).on("error", rej));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

/**
 * Starts Mailpit on fresh ports and waits until its API answers. Returns
 * { smtpURL, api, messages, message, waitFor, stop, start }: stop() and
 * start() take it down and bring it back on the same ports, with its
 * mailbox kept (its database is a file of the run).
 */
export async function startMailpit(bin, name, dir) {
  const smtpPort = await freePort();
  const httpPort = await freePort();
  const api = `http://127.0.0.1:${httpPort}/api/v1`;
  await mkdir(join(artifactsDir, "logs"), { recursive: true });
  const log = createWriteStream(join(artifactsDir, "logs", `${name}.log`), { flags: "a" });
  let child;
  let exited;

  async function start() {
    child = spawn(bin, [
      "--smtp", `127.0.0.1:${smtpPort}`,
      "--listen", `127.0.0.1:${httpPort}`,
      "--database", join(dir, `${name}.db`),
      "--disable-version-check",
    ], { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ["ignore", "pipe", "pipe"] });
    exited = new Promise((res) => child.on("exit", res));
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const res = await fetch(`${api}/info`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}); see artifacts/logs/${name}.log`);
      if (Date.now() > deadline) throw new Error(`${name}: API not up in 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function stop() {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
  }

  /** Every message's summary (newest first, as Mailpit lists them). */
  async function messages() {
    const res = await fetch(`${api}/messages?limit=1000`);
    if (!res.ok) throw new Error(`GET messages: HTTP ${res.status}`);
    return (await res.json()).messages;
  }

  /** One message in full: Text, HTML, headers. */
  async function message(id) {
    const res = await fetch(`${api}/message/${id}`);
    if (!res.ok) throw new Error(`GET message: HTTP ${res.status}`);
    return res.json();
  }

  /** Waits until predicate(summaries) holds, polling the API; returns the summaries. */
  async function waitFor(predicate, what, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const list = await messages();
      if (predicate(list)) return list;
      if (Date.now() > deadline) throw new Error(`Mailpit: ${what} did not happen in ${timeoutMs} ms; have ${JSON.stringify(list.map((m) => [m.To, m.Subject]))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** The newest message to address whose subject is subject, in full, once it arrived. */
  async function mailTo(address, subject, timeoutMs) {
    const match = (m) => m.Subject === subject && m.To.some((t) => t.Address === address);
    const list = await waitFor((l) => l.some(match), `a mail "${subject}" to ${address}`, timeoutMs);
    return message(list.find(match).ID);
  }

  await start();
  return { smtpURL: `smtp://127.0.0.1:${smtpPort}`, api, messages, message, waitFor, mailTo, start, stop: async () => { await stop(); }, close: async () => { await stop(); log.end(); } };
}
