// The end-to-end suite: the real tollgate binary, built once, started on
// SQLite and on PostgreSQL, and the clients its users run against each.
//
// Per database two servers run for the whole suite: "main" with the default
// configuration, and "short-lived" with 10-second access tokens, no leeway and
// no refresh-reuse grace, for the expiry and reuse tests (a real server's
// clock cannot be moved, so expiry takes real seconds). Chromium is launched
// once and shared.
//
// E2E_DATABASES=sqlite (or postgres) runs one database only.
import { after, before, describe } from "node:test";
import { buildBinary, cleanScratch, createPostgresDatabase, scratch, startServer } from "./lib/servers.js";
import { join } from "node:path";
import { apolloTests } from "./tests/apollo.js";
import { subscriptionTests } from "./tests/subscriptions.js";
import { cleanCodegen, codegenTests } from "./tests/codegen.js";
import { auditTests } from "./tests/audit.js";
import { browserTests, closeBrowser } from "./tests/browser.js";
import { readmeTests } from "./tests/readme.js";
import { emailTests } from "./tests/email.js";
import { passkeyTests } from "./tests/passkeys.js";
import { oidcTests } from "./tests/oidc.js";

const shortLivedEnv = { ACCESS_TOKEN_TTL: "10s", JWT_LEEWAY: "0s", REFRESH_REUSE_GRACE: "0s" };

const databases = (process.env.E2E_DATABASES || "sqlite,postgres").split(",").map((s) => s.trim()).filter(Boolean);

let bin;
before(async () => {
  bin = await buildBinary();
}, { timeout: 300_000 });

after(async () => {
  await closeBrowser();
  await cleanCodegen();
  await cleanScratch();
});

// Needs no server: the README's frontend recipe is the code the tests below run.
readmeTests();

for (const database of databases) {
  describe(database, () => {
    const servers = {};
    const cleanups = [];

    before(async () => {
      for (const [role, extra] of [["main", {}], ["shortLived", shortLivedEnv]]) {
        let url;
        if (database === "postgres") {
          const pgdb = await createPostgresDatabase(role.toLowerCase());
          cleanups.push(pgdb.drop);
          url = pgdb.url;
        } else if (database === "sqlite") {
          url = `sqlite:${join(await scratch(), `${role}.db`)}`;
        } else {
          throw new Error(`E2E_DATABASES: unknown database ${database}`);
        }
        servers[role] = await startServer(bin, `${database}-${role}`, { DATABASE_URL: url, ...extra });
        cleanups.unshift(servers[role].stop);
      }
    }, { timeout: 60_000 });

    after(async () => {
      // Servers first (cleanups is ordered so), then their databases.
      for (const fn of cleanups) {
        try {
          await fn();
        } catch (err) {
          console.error(`cleanup: ${err.message}`);
        }
      }
    }, { timeout: 60_000 });

    apolloTests(servers);
    subscriptionTests(servers);
    codegenTests(servers);
    auditTests(servers, database);
    browserTests(servers, database);
    emailTests(database, () => bin);
    passkeyTests(servers, database);
    oidcTests(database, () => bin);
  });
}
