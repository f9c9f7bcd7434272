// The Playground in a real browser: Debian's Chromium, driven by
// playwright-core, with every request that leaves 127.0.0.1 aborted. A user
// opens GET /, logs in through GraphiQL, pastes the token into the headers
// editor and runs { protected }; nothing may be fetched from anywhere but the
// binary, and the page logs no error and no Content-Security-Policy violation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { artifactsDir } from "../lib/servers.js";
import { password, register } from "../lib/http.js";

/** Where the Chromium of Debian's chromium package is. */
export const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

// No sandbox: CI runs as root, where Chromium's sandbox cannot start. The
// other flags stop Chromium from calling home (updates, sync, field trials),
// so that the only traffic is the page's.
const chromiumArgs = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let browser;
/** Launches Chromium once for the whole run. */
export async function sharedBrowser() {
  browser ??= chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, headless: true, timeout: 60_000 });
  return browser;
}

/** Closes the shared Chromium (at the end of the run). */
export async function closeBrowser() {
  if (browser) await (await browser).close();
}

// GraphiQL's editors are CodeMirror instances; their text is read through
// CodeMirror's own API, which sees the whole document (the DOM holds only the
// visible lines).
function editorValue(page, selector) {
  return page.$eval(selector, (el) => el.CodeMirror.getValue());
}

/**
 * Replaces an editor's text as a user does: click in it, select all, delete,
 * then type it key by key (typed) or paste it.
 */
async function replaceEditorText(page, selector, text, { typed = false } = {}) {
  await page.click(`${selector} .CodeMirror-lines`);
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Backspace");
  if (typed) {
    // Key by key, so CodeMirror's bracket and quote auto-closing runs; the
    // caller checks that the editor ends up holding exactly the text.
    await page.keyboard.type(text);
  } else {
    await page.keyboard.insertText(text);
  }
}

async function runAndRead(page, want) {
  await page.click(".graphiql-execute-button");
  const response = ".graphiql-response .CodeMirror";
  await page.waitForFunction(
    ({ sel, want }) => document.querySelector(sel)?.CodeMirror?.getValue().includes(want),
    { sel: response, want },
    { timeout: 15_000 },
  );
  return JSON.parse(await editorValue(page, response));
}

export function browserTests(servers, label) {
  test("Chromium: GraphiQL from the binary alone logs in and calls { protected } with the token in its headers editor", { timeout: 120_000 }, async () => {
    const server = servers.main;
    const user = await register(server, "browser");
    const b = await sharedBrowser();
    const context = await b.newContext({ viewport: { width: 1400, height: 900 } });
    const outside = [];
    const consoleErrors = [];
    try {
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname !== "127.0.0.1") {
          outside.push(route.request().url());
          return route.abort("blockedbyclient");
        }
        return route.continue();
      });
      // Collect CSP violations as the page sees them, from the first script on.
      await context.addInitScript(() => {
        window.__csp = [];
        document.addEventListener("securitypolicyviolation", (e) =>
          window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`),
        );
      });
      const page = await context.newPage();
      page.on("console", (msg) => {
        if (msg.type() === "error") consoleErrors.push(msg.text());
      });
      page.on("pageerror", (err) => consoleErrors.push(`pageerror: ${err.message}`));

      const res = await page.goto(`${server.url}/`, { waitUntil: "load" });
      assert.equal(res.status(), 200);
      assert.ok(res.headers()["content-security-policy"], "the Playground is served with a CSP");
      try {
        await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout: 30_000 });
      } catch (err) {
        // Say why: a Playground that loads its code from elsewhere stays blank here.
        err.message += `\nrequests aborted for leaving 127.0.0.1: ${JSON.stringify(outside)}\nconsole errors: ${JSON.stringify(consoleErrors)}`;
        throw err;
      }

      await replaceEditorText(
        page,
        ".graphiql-query-editor",
        `mutation { login(username: "${user.username}", password: "${password}") { accessToken user { username } } }`,
      );
      const login = await runAndRead(page, "accessToken");
      assert.equal(login.errors, undefined, JSON.stringify(login.errors));
      assert.equal(login.data.login.user.username, user.username);
      const token = login.data.login.accessToken;

      await replaceEditorText(page, ".graphiql-query-editor", "{ protected }");
      // The headers editor sits behind its tab in the editor tools.
      await page.getByRole("button", { name: "Headers", exact: true }).click();
      const headers = ".graphiql-editor-tool .graphiql-editor:not(.hidden)";
      await page.waitForSelector(`${headers} .CodeMirror`, { state: "visible" });
      const headerJSON = JSON.stringify({ Authorization: `Bearer ${token}` });
      await replaceEditorText(page, headers, headerJSON, { typed: true });
      assert.equal(await editorValue(page, `${headers} .CodeMirror`), headerJSON);

      const result = await runAndRead(page, "This is a protected endpoint.");
      assert.deepEqual(result, { data: { protected: "This is a protected endpoint." } });

      await mkdir(artifactsDir, { recursive: true });
      await page.screenshot({ path: join(artifactsDir, `graphiql-${label}.png`), fullPage: true });

      const csp = await page.evaluate(() => window.__csp);
      assert.deepEqual(csp, [], "no Content-Security-Policy violation");
      assert.deepEqual(consoleErrors, [], "no console error");
      assert.deepEqual(outside, [], "no request left 127.0.0.1");
    } finally {
      await context.close();
    }
  });
}
