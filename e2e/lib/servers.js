// Builds the real tollgate binary once and runs it as its users do: a child
// process configured through the environment, on a loopback port the kernel
// picks (ADDR=127.0.0.1:0; the address is read from the "listening" log line),
// on a fresh SQLite file or a fresh PostgreSQL database.
import { spawn, execFile, execFileSync } from "node:child_process";
import { createWriteStream, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import pg from "pg";

const exec = promisify(execFile);

/** The repository root (e2e/ lives in it). */
export const repoRoot = resolve(import.meta.dirname, "..", "..");
/** Where logs and screenshots go (gitignored). */
export const artifactsDir = join(repoRoot, "e2e", "artifacts");

/** PostgreSQL for the run; the same default as the Go tests. */
export const postgresURL = process.env.TEST_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

let workDir;
const children = new Set();
const databaseNames = new Set();

/** The scratch directory of this run: the binary and the SQLite files. */
export async function scratch() {
  workDir ??= await mkdtemp(join(tmpdir(), "tollgate-e2e-"));
  return workDir;
}

/** go build the server once from the repository root; returns the binary's path. */
export async function buildBinary() {
  const bin = join(await scratch(), "tollgate");
  await exec("go", ["build", "-o", bin, "."], { cwd: repoRoot, timeout: 300_000 });
  return bin;
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = "/" + name;
  return u.toString();
}

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

let swept = false;
/**
 * Drops the databases that earlier runs left behind when they were killed
 * before their clean-up (their names carry the pid of a process that is gone).
 */
async function sweepStaleDatabases(admin) {
  if (swept) return;
  swept = true;
  const { rows } = await admin.query(`SELECT datname FROM pg_database WHERE datname LIKE 'tollgate\\_e2e\\_%'`);
  for (const { datname } of rows) {
    const m = /^tollgate_e2e_[a-z]+_(\d+)_[0-9a-f]+$/.exec(datname);
    if (m && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) {
      await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    }
  }
}

/**
 * Creates a fresh PostgreSQL database for one server and returns its URL and
 * a function that drops it (FORCE ends the connections a killed server left).
 */
export async function createPostgresDatabase(label) {
  const name = `tollgate_e2e_${label}_${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: postgresURL, connectionTimeoutMillis: 5000 });
  await admin.connect();
  try {
    await sweepStaleDatabases(admin);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const drop = async () => {
    const c = new pg.Client({ connectionString: postgresURL, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      databaseNames.delete(name);
    } finally {
      await c.end();
    }
  };
  databaseNames.add(name);
  return { url: withDatabase(postgresURL, name), drop };
}

/**
 * Starts the binary with env on top of a minimal environment and waits until
 * GET /healthz answers 200. Its log goes to artifacts/logs/<name>.log.
 * Returns { name, url, wsURL, origin, stop }.
 */
export async function startServer(bin, name, env, { timeoutMs = 30_000 } = {}) {
  await mkdir(join(artifactsDir, "logs"), { recursive: true });
  const logPath = join(artifactsDir, "logs", `${name}.log`);
  const log = createWriteStream(logPath);
  const child = spawn(bin, [], {
    cwd: await scratch(),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ADDR: "127.0.0.1:0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let exited = null;
  const exitPromise = new Promise((res) =>
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      children.delete(child);
      res(exited);
    }),
  );
  const addr = new Promise((res, rej) => {
    let buf = "";
    child.stdout.on("data", (chunk) => {
      log.write(chunk);
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const rec = JSON.parse(line);
          if (rec.msg === "listening") res(rec.addr);
        } catch {
          // not a JSON log line
        }
      }
    });
    child.stderr.on("data", (chunk) => log.write(chunk));
    exitPromise.then((e) => rej(new Error(`${name} exited before listening (${JSON.stringify(e)}); see ${logPath}`)));
  });
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitPromise;
      clearTimeout(t);
    }
    log.end();
  };
  try {
    const deadline = Date.now() + timeoutMs;
    const address = await Promise.race([
      addr,
      new Promise((_, rej) => setTimeout(() => rej(new Error(`${name} did not log "listening" in ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    const url = `http://${address}`;
    for (;;) {
      try {
        const res = await fetch(`${url}/healthz`);
        if (res.status === 200) break;
      } catch {
        // not accepting yet
      }
      if (exited) throw new Error(`${name} exited: ${JSON.stringify(exited)}; see ${logPath}`);
      if (Date.now() > deadline) throw new Error(`${name}: /healthz not 200 within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { name, url, origin: url, graphqlURL: `${url}/graphql`, wsURL: `ws://${address}/graphql`, logPath, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Kills whatever servers are still running: the last resort on exit or a signal. */
export function killAll() {
  for (const c of children) c.kill("SIGKILL");
}

process.on("exit", killAll);
// Interrupted (Ctrl-C, or the timeout in .ci/test): kill the servers, drop
// their databases, remove the scratch directory, and exit as the signal would have. All of it synchronous
// (psql rather than the pg client), so that it is done before anything else
// runs: the test runner and npm are being stopped by the same signal. What a
// SIGKILL leaves behind, the next run's sweep drops.
for (const [sig, num] of [["SIGINT", 2], ["SIGTERM", 15], ["SIGHUP", 1]]) {
  process.on(sig, () => {
    killAll();
    for (const name of databaseNames) {
      try {
        execFileSync("psql", [postgresURL, "-qAtc", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { timeout: 5000, stdio: "ignore" });
      } catch {
        // best effort: the next run sweeps it
      }
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    process.exit(128 + num);
  });
}

/** Removes the scratch directory (binary and SQLite files). */
export async function cleanScratch() {
  if (workDir) await rm(workDir, { recursive: true, force: true });
}
