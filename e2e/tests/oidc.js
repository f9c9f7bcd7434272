// Sign-in with an OpenID Connect provider, with real parts: the binary,
// oauth2-mock-server (a real OpenID provider: discovery, JWKS, the
// authorization and token endpoints with PKCE) in this process on a
// kernel-picked loopback port, and Debian's Chromium driving the whole
// redirect flow from the /passkeys page's buttons. The first sign-in creates
// the user, the second signs the same user in; a password user links a
// second provider's identity; the last way to sign in cannot be unlinked; a
// replayed callback URL is refused; an ID token with a wrong nonce (the
// mock's beforeTokenSigning hook) is refused.
//
// The page is opened on http://localhost:<port>, PUBLIC_URL's default for
// the port picked before the server starts: the callback registered at the
// provider, the cookies and the page share that origin.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { OAuth2Server } from "oauth2-mock-server";
import { artifactsDir, createPostgresDatabase, scratch, startServer } from "../lib/servers.js";
import { freePort } from "../lib/mailpit.js";
import { gql, password, register, uniqueName } from "../lib/http.js";
import { sharedBrowser } from "./browser.js";

async function statusIs(page, pattern, timeout = 15_000) {
  try {
    await page.waitForFunction((src) => new RegExp(src).test(document.getElementById("status").textContent), pattern.source, { timeout });
  } catch (err) {
    err.message += `\nstatus: ${await page.textContent("#status")}`;
    throw err;
  }
}

export function oidcTests(database, bin) {
  describe("OpenID Connect sign-in in Chromium", () => {
    let mock;
    let server;
    let origin;
    // What the provider says of the next account: its sub, and whether the
    // next ID token gets a wrong nonce.
    const next = { sub: "", spoilNonce: false };
    const cleanups = [];

    before(async () => {
      mock = new OAuth2Server();
      await mock.issuer.keys.generate("RS256");
      await mock.start(0, "127.0.0.1");
      cleanups.push(() => mock.stop());
      mock.service.on("beforeTokenSigning", (token) => {
        // The ID token is the one that carries the nonce.
        if (!("nonce" in token.payload)) return;
        token.payload.sub = next.sub;
        token.payload.email = `${next.sub}@example.com`;
        token.payload.email_verified = true;
        if (next.spoilNonce) token.payload.nonce = "not-the-nonce-of-this-flow";
      });
      let url;
      if (database === "postgres") {
        const pgdb = await createPostgresDatabase("oidc");
        cleanups.push(pgdb.drop);
        url = pgdb.url;
      } else {
        url = `sqlite:${join(await scratch(), "oidc.db")}`;
      }
      const port = await freePort();
      origin = `http://localhost:${port}`;
      server = await startServer(bin(), `${database}-oidc`, {
        DATABASE_URL: url,
        ADDR: `127.0.0.1:${port}`,
        // Two providers at the same issuer, with their own client ids: two
        // kinds of identity, as Google and Microsoft would be.
        OIDC_PROVIDERS: "mock,other",
        OIDC_MOCK_ISSUER: mock.issuer.url,
        OIDC_MOCK_CLIENT_ID: "tollgate-e2e",
        OIDC_MOCK_CLIENT_SECRET: "e2e-client-secret",
        OIDC_OTHER_ISSUER: mock.issuer.url,
        OIDC_OTHER_CLIENT_ID: "tollgate-e2e-other",
        OIDC_OTHER_CLIENT_SECRET: "e2e-other-secret",
        OIDC_REDIRECT_URIS: `${origin}/passkeys`,
      });
      cleanups.unshift(server.stop);
    }, { timeout: 120_000 });

    after(async () => {
      for (const fn of cleanups) {
        try {
          await fn();
        } catch (err) {
          console.error(`cleanup: ${err.message}`);
        }
      }
    }, { timeout: 60_000 });

    /** A fresh browser context, its requests kept on this machine. */
    async function context() {
      const b = await sharedBrowser();
      const ctx = await b.newContext();
      const outside = [];
      await ctx.route("**/*", (route) => {
        const host = new URL(route.request().url()).hostname;
        if (host !== "localhost" && host !== "127.0.0.1") {
          outside.push(route.request().url());
          return route.abort("blockedbyclient");
        }
        return route.continue();
      });
      await ctx.addInitScript(() => {
        window.__csp = [];
        document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      const page = await ctx.newPage();
      const callbacks = [];
      page.on("request", (r) => r.url().includes("/callback?") && callbacks.push(r.url()));
      return { ctx, page, outside, callbacks };
    }

    /** Signs in on /passkeys with the provider's button; returns the username shown. */
    async function signInWithButton(page, provider = "mock") {
      await page.goto(`${origin}/passkeys`);
      await page.click(`#oidc-${provider}`);
      await page.waitForURL(`${origin}/passkeys`);
      await statusIs(page, /^Signed in as [^ ]+ \(provider, AAL1\)\.$/);
      assert.match(await page.textContent("#who"), /AAL1 · amr fed$/);
      return (await page.textContent("#status")).match(/^Signed in as ([^ ]+) /)[1];
    }

    /** The page's own refreshToken (the cookie's): the session's access token. */
    async function refreshInPage(page) {
      return page.evaluate(async () => {
        const res = await fetch("/graphql", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: "mutation { refreshToken { accessToken user { id username } } }" }) });
        return (await res.json()).data.refreshToken;
      });
    }

    test("the first sign-in creates the user, the second signs the same user in, a replayed callback is refused", { timeout: 120_000 }, async () => {
      next.sub = uniqueName("fed");
      const first = await context();
      try {
        const name = await signInWithButton(first.page);
        assert.equal(name, next.sub, "the username is the email's local part");
        const providers = await gql(server, "{ oidcProviders }");
        assert.deepEqual(providers.data.oidcProviders, ["mock", "other"]);

        // The callback URL, replayed in the same browser, finds its state used.
        assert.equal(first.callbacks.length, 1);
        const replay = await first.page.goto(first.callbacks[0]);
        assert.equal(replay.status(), 400);

        await mkdir(artifactsDir, { recursive: true });
        await first.page.goto(`${origin}/passkeys`);
        await first.page.screenshot({ path: join(artifactsDir, `oidc-${database}.png`), fullPage: true });
        assert.deepEqual(await first.page.evaluate(() => window.__csp), [], "no Content-Security-Policy violation");
        assert.deepEqual(first.outside, [], "no request left the machine");
      } finally {
        await first.ctx.close();
      }
      const second = await context();
      try {
        assert.equal(await signInWithButton(second.page), next.sub, "the same user, not a second one");
      } finally {
        await second.ctx.close();
      }
    });

    test("a password user links a second provider's identity, which then signs that user in", { timeout: 120_000 }, async () => {
      const user = await register(server, "linker");
      next.sub = uniqueName("linked");
      const { ctx, page } = await context();
      try {
        await page.goto(`${origin}/passkeys`);
        await page.fill("#username", user.username);
        await page.fill("#password", password);
        await page.click("#password-login");
        await statusIs(page, new RegExp(`^Signed in as ${user.username} \\(password, AAL1\\)\\.$`));
        await page.click("#link-other");
        await page.waitForURL(`${origin}/passkeys`);
        await statusIs(page, /^Account linked: sign in to use it\.$/);
      } finally {
        await ctx.close();
      }
      const login = await gql(server, "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }", { u: user.username, p: password });
      const ids = await gql(server, "{ identities { provider subject email } }", {}, login.data.login.accessToken);
      assert.deepEqual(ids.data.identities, [{ provider: "other", subject: next.sub, email: `${next.sub}@example.com` }]);
      const again = await context();
      try {
        assert.equal(await signInWithButton(again.page, "other"), user.username, "the linked identity signs the password user in");
      } finally {
        await again.ctx.close();
      }
    });

    test("unlinkIdentity refuses a user's last way to sign in", { timeout: 120_000 }, async () => {
      next.sub = uniqueName("only");
      const { ctx, page } = await context();
      try {
        // Straight to the start route: the page does not refresh on its own,
        // so the first refresh, the fresh one, is this test's.
        await page.goto(`${origin}/auth/oidc/mock/start?redirect_uri=${encodeURIComponent(`${origin}/passkeys`)}`);
        await page.waitForURL(`${origin}/passkeys`);
        const session = await refreshInPage(page);
        const ids = await gql(server, "{ identities { id provider } }", {}, session.accessToken);
        assert.equal(ids.data.identities.length, 1);
        const res = await gql(server, "mutation($id: ID!) { unlinkIdentity(id: $id) }", { id: ids.data.identities[0].id }, session.accessToken);
        assert.equal(res.errors?.[0]?.extensions?.reason, "LAST_SIGN_IN_METHOD", JSON.stringify(res));
      } finally {
        await ctx.close();
      }
    });

    test("an ID token with a wrong nonce is refused", { timeout: 120_000 }, async () => {
      next.sub = uniqueName("nonce");
      next.spoilNonce = true;
      const { ctx, page } = await context();
      try {
        await page.goto(`${origin}/passkeys`);
        await page.click("#oidc-mock");
        await page.waitForURL(/\/passkeys\?error=invalid_token$/);
        await statusIs(page, /^The provider sign-in was refused: invalid_token\.$/);
        assert.equal(await page.isHidden("#signed-in"), true);
      } finally {
        next.spoilNonce = false;
        await ctx.close();
      }
    });
  });
}
