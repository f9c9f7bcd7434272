// @graphql-codegen/cli with the client preset, as a TypeScript front end runs
// it: once from schema.graphqls and once from the running server's
// introspection. The two generations must be identical (the server serves
// the schema it declares), and the typed client in typed/ must type-check
// against them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { generate } from "@graphql-codegen/cli";
import { artifactsDir, repoRoot } from "../lib/servers.js";

const exec = promisify(execFile);
const e2eDir = join(repoRoot, "e2e");
const typedClient = join(e2eDir, "typed", "client.ts");

// Scratch directories live under artifacts/ (gitignored) rather than the
// system temp directory so that the generated code resolves its imports
// (@graphql-typed-document-node/core) from e2e/node_modules.
// What an interrupted run left there is removed first.
let codegenDir;
async function scratchDir(label) {
  codegenDir ??= (async () => {
    const dir = join(artifactsDir, "codegen");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return dir;
  })();
  return mkdtemp(join(await codegenDir, `${label}-`));
}

async function runCodegen(schema, label) {
  const dir = await scratchDir(label);
  await generate(
    {
      schema,
      documents: [typedClient],
      generates: {
        [join(dir, "gql") + "/"]: {
          preset: "client",
          config: { scalars: { Time: "string" }, useTypeImports: true },
        },
      },
      silent: true,
      errorsOnly: true,
    },
    true,
  );
  return dir;
}

async function readTree(dir) {
  const out = {};
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const path = join(dir, name);
    try {
      out[name] = await readFile(path, "utf8");
    } catch (err) {
      if (err.code !== "EISDIR") throw err;
    }
  }
  return out;
}

/** The first line where two texts differ, for a readable failure. */
function firstDifference(a, b) {
  const x = a.split("\n");
  const y = b.split("\n");
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return `line ${i + 1}:\n  schema.graphqls: ${x[i]}\n  introspection:   ${y[i]}`;
  }
  return "(no line differs)";
}

let fromFile;
/** Generates from schema.graphqls once for the whole run. */
function generationFromFile() {
  fromFile ??= (async () => {
    const dir = await runCodegen(join(repoRoot, "schema.graphqls"), "file");
    return { dir, files: await readTree(join(dir, "gql")) };
  })();
  return fromFile;
}

/** Removes the generation from schema.graphqls (at the end of the run). */
export async function cleanCodegen() {
  if (fromFile) await rm((await fromFile).dir, { recursive: true, force: true });
}

export function codegenTests(servers) {
  test("GraphQL Code Generator: schema.graphqls and the server's introspection generate the same TypeScript, and the typed client compiles", { timeout: 180_000 }, async () => {
    const file = await generationFromFile();
    const introspected = await runCodegen(servers.main.graphqlURL, "introspection");
    try {
      const files = await readTree(join(introspected, "gql"));
      assert.deepEqual(Object.keys(files), Object.keys(file.files));
      assert.ok(Object.keys(files).includes("graphql.ts"), `generated: ${Object.keys(files)}`);
      for (const name of Object.keys(files)) {
        assert.ok(files[name] === file.files[name], `${name} differs between schema.graphqls and introspection:\n${firstDifference(file.files[name], files[name])}`);
      }
      // The documents made it into the generated types.
      assert.match(files["graphql.ts"], /export type ProtectedQuery = /);
      assert.match(files["graphql.ts"], /export type Role =\s+\| 'ADMIN'\s+\| 'USER';/);

      const tsconfig = join(introspected, "tsconfig.json");
      await writeFile(
        tsconfig,
        JSON.stringify({
          extends: join(e2eDir, "typed", "tsconfig.json"),
          compilerOptions: {
            paths: {
              "@tollgate/gql": [join(introspected, "gql", "index.ts")],
              "@tollgate/gql/*": [join(introspected, "gql", "*")],
            },
          },
          files: [typedClient],
        }),
      );
      const tsc = join(e2eDir, "node_modules", "typescript", "bin", "tsc");
      try {
        await exec(process.execPath, [tsc, "--noEmit", "-p", tsconfig], { cwd: e2eDir, timeout: 120_000 });
      } catch (err) {
        assert.fail(`tsc --noEmit failed:\n${err.stdout}${err.stderr}`);
      }
    } finally {
      await rm(introspected, { recursive: true, force: true });
    }
  });
}
