// Account recovery with real parts: the binary sends its mail over SMTP to
// Mailpit, the test reads each mail through Mailpit's HTTP API as a mailbox
// would, and opens its link in Debian's Chromium, on the pages the binary
// serves. A person registers with an address, confirms it from the
// verification mail, forgets the password, and gets back in through the
// reset mail; the session they had before is gone. Then Mailpit goes down
// while mails are queued, comes back, and each mail arrives exactly once.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { artifactsDir, createPostgresDatabase, scratch, startServer } from "../lib/servers.js";
import { buildMailpit, freePort, startMailpit } from "../lib/mailpit.js";
import { gql, password, uniqueName } from "../lib/http.js";
import { chromiumPath } from "./browser.js";

const subjects = { verify: "Confirm your email address", reset: "Reset your password" };

/** Registers a user with an address; returns { username, email, accessToken, refreshToken }. */
async function registerWithEmail(server, prefix) {
  const username = uniqueName(prefix);
  const email = `${username}@example.com`;
  const body = await gql(
    server,
    "mutation($u: String!, $p: String!, $e: String) { register(username: $u, password: $p, email: $e) { accessToken refreshToken } }",
    { u: username, p: password, e: email },
  );
  if (body.errors) throw new Error(`register: ${JSON.stringify(body.errors)}`);
  return { username, email, ...body.data.register };
}

/** The link of a mail to one of the server's pages, checked against both parts. */
function linkIn(mail, server, path) {
  const m = mail.Text.match(new RegExp(`${server.url.replace(/[.]/g, "\\.")}${path}\\?token=([A-Za-z0-9_-]{43})`));
  assert.ok(m, `no ${path} link in the text part: ${mail.Text}`);
  assert.ok(mail.HTML.includes(`href="${m[0]}"`), `the HTML part links elsewhere: ${mail.HTML}`);
  assert.ok(new RegExp(`^${m[1]}\r?$`, "m").test(mail.Text), "the text part carries the code to paste, on a line of its own");
  assert.ok(mail.MessageID, "the mail has a Message-ID");
  return m[0];
}

/** Prometheus text: the value of the first sample of name whose labels include label. */
async function metric(server, name, label = "") {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name) && l.includes(label) && !l.startsWith("#"));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function until(fn, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Opens link in a fresh Chromium context where every request that leaves
 * 127.0.0.1 is aborted and CSP violations and console errors are collected;
 * runs act(page) and then checks that nothing of the sort happened.
 */
async function inBrowser(browser, link, act) {
  const context = await browser.newContext();
  const outside = [];
  const errors = [];
  try {
    await context.route("**/*", (route) => {
      if (new URL(route.request().url()).hostname !== "127.0.0.1") {
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
    page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
    page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
    const res = await page.goto(link, { waitUntil: "load" });
    assert.equal(res.status(), 200);
    assert.match(res.headers()["content-security-policy"], /default-src 'none'.*script-src 'self'/);
    // The page takes the token out of the address bar.
    assert.ok(!page.url().includes("token="), `the token stayed in the address bar: ${page.url()}`);
    await act(page);
    assert.deepEqual(await page.evaluate(() => window.__csp), [], "no Content-Security-Policy violation");
    assert.deepEqual(errors, [], "no console error");
    assert.deepEqual(outside, [], "no request left 127.0.0.1");
  } finally {
    await context.close();
  }
}

export function emailTests(database, bin) {
  describe("email and account recovery over SMTP (Mailpit)", () => {
    let mailpit;
    let server;
    let browser;
    const cleanups = [];

    before(async () => {
      const dir = await scratch();
      mailpit = await startMailpit(await buildMailpit(), `mailpit-${database}`, dir);
      cleanups.push(mailpit.close);
      let url;
      if (database === "postgres") {
        const pgdb = await createPostgresDatabase("mail");
        cleanups.push(pgdb.drop);
        url = pgdb.url;
      } else {
        url = `sqlite:${join(dir, "mail.db")}`;
      }
      // PUBLIC_URL must name the server's own address, so its port is
      // picked before it starts, as an operator would set it.
      const port = await freePort();
      server = await startServer(bin(), `${database}-mail`, {
        DATABASE_URL: url,
        ADDR: `127.0.0.1:${port}`,
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        SMTP_URL: mailpit.smtpURL,
        MAIL_FROM: "Tollgate <accounts@tollgate.test>",
        // Every test of the run mails from 127.0.0.1.
        MAILS_PER_IP_PER_HOUR: "1000",
      });
      cleanups.unshift(server.stop);
      browser = await chromium.launch({
        executablePath: chromiumPath,
        headless: true,
        timeout: 60_000,
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
    }, { timeout: 600_000 });

    after(async () => {
      if (browser) await browser.close();
      for (const fn of cleanups) {
        try {
          await fn();
        } catch (err) {
          console.error(`cleanup: ${err.message}`);
        }
      }
    }, { timeout: 60_000 });

    test("register → verification mail → /verify-email in Chromium → requestPasswordReset → reset mail → /reset-password in Chromium → login with the new password; the old refresh token is refused", { timeout: 120_000 }, async () => {
      const user = await registerWithEmail(server, "recover");

      const verification = await mailpit.mailTo(user.email, subjects.verify);
      assert.equal(verification.From.Address, "accounts@tollgate.test");
      await inBrowser(browser, linkIn(verification, server, "/verify-email"), async (page) => {
        await page.getByRole("button", { name: "Confirm my address" }).click();
        await page.waitForSelector("#status.ok", { timeout: 15_000 });
        assert.match(await page.textContent("#status"), /confirmed/);
      });
      const me = await gql(server, "{ me { email emailVerified } }", {}, user.accessToken);
      assert.deepEqual(me.data.me, { email: user.email, emailVerified: true });

      // The person forgets the password.
      const asked = await gql(server, "mutation($e: String!) { requestPasswordReset(email: $e) }", { e: user.email.toUpperCase() });
      assert.deepEqual(asked, { data: { requestPasswordReset: true } });
      const reset = await mailpit.mailTo(user.email, subjects.reset);
      const newPassword = "a new and long password";
      await inBrowser(browser, linkIn(reset, server, "/reset-password"), async (page) => {
        await page.fill("#password", newPassword);
        await page.fill("#repeat", newPassword);
        await page.getByRole("button", { name: "Set the new password" }).click();
        await page.waitForSelector("#status.ok", { timeout: 30_000 });
        assert.match(await page.textContent("#status"), /password is set/);
        await mkdir(artifactsDir, { recursive: true });
        await page.screenshot({ path: join(artifactsDir, `reset-password-${database}.png`), fullPage: true });
      });

      // Back in, by name or by the verified address, with the new password only.
      const login = (u, p) => gql(server, "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }", { u, p });
      assert.ok((await login(user.email, newPassword)).data.login.accessToken);
      assert.ok((await login(user.username, newPassword)).data.login.accessToken);
      assert.equal((await login(user.username, password)).errors[0].extensions.reason, "INVALID_CREDENTIALS");
      const old = await gql(server, "mutation($t: String) { refreshToken(token: $t) { accessToken } }", { t: user.refreshToken });
      assert.equal(old.errors?.[0]?.extensions?.reason, "REFRESH_TOKEN_INVALID", JSON.stringify(old));
      // The used link is used up.
      const again = await gql(server, "mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) { accessToken } }",
        { t: new URL(linkIn(reset, server, "/reset-password")).searchParams.get("token"), p: "yet another password" });
      assert.equal(again.errors?.[0]?.extensions?.reason, "INVALID_TOKEN");
    });

    test("mails queued while the SMTP server is down are each delivered exactly once after it comes back", { timeout: 240_000 }, async () => {
      await mailpit.stop();
      const users = [];
      const retriedBefore = await metric(server, "tollgate_mails_total", 'outcome="retried"');
      for (let i = 0; i < 3; i++) users.push(await registerWithEmail(server, "down"));
      // Each was tried against the closed port and put back for a retry.
      await until(async () => (await metric(server, "tollgate_mails_total", 'outcome="retried"')) >= retriedBefore + 3, "three retries", 30_000);
      assert.equal(await metric(server, "tollgate_mail_outbox_depth"), 3);

      await mailpit.start();
      // The retry comes after the sender's backoff (30 s, jittered, doubling).
      const mine = (list) => list.filter((m) => users.some((u) => m.To.some((t) => t.Address === u.email)));
      await mailpit.waitFor((list) => mine(list).length >= 3, "the three queued mails", 180_000);
      await until(async () => (await metric(server, "tollgate_mail_outbox_depth")) === 0, "an empty outbox", 30_000);
      // One more poll of the sender (5 s) may pass: still exactly one each.
      await new Promise((r) => setTimeout(r, 6_000));
      const arrived = mine(await mailpit.messages());
      for (const u of users) {
        assert.equal(arrived.filter((m) => m.To.some((t) => t.Address === u.email)).length, 1, `${u.email} got its mail once`);
      }
      assert.equal(arrived.length, 3);
    });
  });
}
