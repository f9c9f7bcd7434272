// Passkeys in a real browser: Debian's Chromium, driven by playwright-core,
// with the DevTools WebAuthn virtual authenticator (CTAP2, internal
// transport, resident keys, user verification) standing in for a platform
// authenticator. On the binary's /passkeys page, a password user registers a
// passkey, signs out, signs in with it and no username (AAL2: { protected },
// guarded at AAL2 for an enrolled user, answers), then signs in with the
// password and verifies with the passkey; with the authenticator's credential
// removed, the sign-in is refused. WebAuthn needs a secure origin and an RP
// ID that is a domain: the page is opened on http://localhost:<port>, the
// server's development relying party.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { artifactsDir } from "../lib/servers.js";
import { password, register } from "../lib/http.js";
import { sharedBrowser } from "./browser.js";

async function statusIs(page, pattern, timeout = 15_000) {
  try {
    await page.waitForFunction((src) => new RegExp(src).test(document.getElementById("status").textContent), pattern.source, { timeout });
  } catch (err) {
    err.message += `\nstatus: ${await page.textContent("#status")}`;
    throw err;
  }
}

export function passkeyTests(servers, label) {
  test("Chromium: a passkey registered on /passkeys with the virtual authenticator signs in without a username, and verifies a password sign-in", { timeout: 120_000 }, async () => {
    const server = servers.main;
    const user = await register(server, "passkey");
    const origin = `http://localhost:${new URL(server.url).port}`;
    const b = await sharedBrowser();
    const context = await b.newContext();
    const outside = [];
    const consoleErrors = [];
    try {
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname !== "localhost" && url.hostname !== "127.0.0.1") {
          outside.push(route.request().url());
          return route.abort("blockedbyclient");
        }
        return route.continue();
      });
      await context.addInitScript(() => {
        window.__csp = [];
        document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      const page = await context.newPage();
      page.on("console", (msg) => {
        if (msg.type() === "error") consoleErrors.push(msg.text());
      });
      page.on("pageerror", (err) => consoleErrors.push(`pageerror: ${err.message}`));

      const cdp = await context.newCDPSession(page);
      await cdp.send("WebAuthn.enable");
      const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
        options: {
          protocol: "ctap2",
          transport: "internal",
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      });

      const res = await page.goto(`${origin}/passkeys`, { waitUntil: "load" });
      assert.equal(res.status(), 200);
      assert.match(res.headers()["content-security-policy"], /script-src 'self'/);

      // A password user registers a passkey.
      await page.fill("#username", user.username);
      await page.fill("#password", password);
      await page.click("#password-login");
      await statusIs(page, /^Signed in as .* \(password, AAL1\)\.$/);
      await page.fill("#friendly-name", "Virtual authenticator");
      await page.click("#register-passkey");
      await statusIs(page, /^Passkey registered: Virtual authenticator\.$/);
      const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");
      assert.equal(credentials[0].rpId, "localhost");
      await page.click("#logout");
      await statusIs(page, /^Signed out\.$/);

      // Usernameless: the authenticator offers the passkey; AAL2 at once.
      await page.click("#passkey-login");
      await statusIs(page, new RegExp(`^Signed in as ${user.username} \\(passkey, AAL2\\)\\.$`));
      assert.match(await page.textContent("#who"), /AAL2 · amr hwk user$/);
      await page.click("#call-protected");
      await page.waitForFunction(() => document.getElementById("result").textContent === "This is a protected endpoint.");
      await page.click("#logout");
      await statusIs(page, /^Signed out\.$/);

      // Password first: AAL1, the AAL2 field refused; then the passkey.
      await page.fill("#username", user.username);
      await page.fill("#password", password);
      await page.click("#password-login");
      await statusIs(page, /^Password accepted: verify with a passkey\.$/);
      await page.click("#call-protected");
      await statusIs(page, /^FORBIDDEN \/ MFA_REQUIRED: /);
      await page.click("#verify-passkey");
      await statusIs(page, new RegExp(`^Signed in as ${user.username} \\(password and passkey, AAL2\\)\\.$`));
      assert.match(await page.textContent("#who"), /AAL2 · amr pwd hwk$/);
      await page.click("#call-protected");
      await page.waitForFunction(() => document.getElementById("result").textContent === "This is a protected endpoint.");
      await page.click("#logout");
      await statusIs(page, /^Signed out\.$/);

      // The authenticator no longer holds the credential: no sign-in.
      await cdp.send("WebAuthn.clearCredentials", { authenticatorId });
      await page.click("#passkey-login");
      await statusIs(page, /NotAllowedError|not allowed|timed out/i, 60_000);
      assert.equal(await page.isHidden("#signed-in"), true);

      await mkdir(artifactsDir, { recursive: true });
      await page.screenshot({ path: join(artifactsDir, `passkeys-${label}.png`), fullPage: true });
      await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });

      assert.deepEqual(await page.evaluate(() => window.__csp), [], "no Content-Security-Policy violation");
      // The one expected console error: the MFA_REQUIRED answer is HTTP 200, so none is logged for it.
      assert.deepEqual(consoleErrors, [], "no console error");
      assert.deepEqual(outside, [], "no request left the machine");
    } finally {
      await context.close();
    }
  });
}
