// The README's frontend recipe is the code the suite runs: each of its code
// blocks marked <!-- e2e/lib/frontend/<file> --> must be that file byte for
// byte, and every file there must be shown once. A change to either side
// alone fails here, so the copy a frontend team takes cannot drift from the
// code that apollo.js and subscriptions.js prove.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../lib/servers.js";

const dir = join(repoRoot, "e2e", "lib", "frontend");

/** The marked blocks of the README: [{ name, code }]. */
export function recipeBlocks(readme) {
  const marked = /^<!-- e2e\/lib\/frontend\/([\w.-]+) -->\n```js\n([\s\S]*?)^```$/gm;
  return [...readme.matchAll(marked)].map((m) => ({ name: m[1], code: m[2] }));
}

export function readmeTests() {
  test("README: the code blocks of \"Using Tollgate from a frontend\" are e2e/lib/frontend/, byte for byte", async () => {
    const readme = await readFile(join(repoRoot, "README.md"), "utf8");
    const blocks = recipeBlocks(readme);
    const files = (await readdir(dir)).filter((f) => f.endsWith(".js")).sort();
    assert.deepEqual(blocks.map((b) => b.name).sort(), files, "each file of e2e/lib/frontend/ is shown exactly once in README.md");
    for (const { name, code } of blocks) {
      assert.equal(code, await readFile(join(dir, name), "utf8"), `README.md's block for ${name} differs from e2e/lib/frontend/${name}: change both`);
    }
  });
}
