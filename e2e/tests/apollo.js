// Apollo Client 4 with the auth and error links of lib/apollo.js, across a
// real expiry: the short-lived server issues 10-second access tokens with no
// leeway and no refresh-reuse grace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gql as tag } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { createAuthClient } from "../lib/apollo.js";
import { claims, gql, register } from "../lib/http.js";

/** A fetch that counts what goes through it, by operation name. */
function countingFetch() {
  const sent = [];
  const fn = async (input, init) => {
    const body = JSON.parse(init.body);
    sent.push(body.operationName ?? "(anonymous)");
    return fetch(input, init);
  };
  return { fn, sent, count: (name) => sent.filter((n) => n === name).length };
}

const queries = [
  tag`query Protected { protected }`,
  tag`query Me { me { username } }`,
  tag`query Sessions { sessions { id current } }`,
  tag`query Notes { notes { id } }`,
  tag`query ProtectedAgain { again: protected }`,
];

/** Waits (real time: the server's clock cannot be moved) until the token has expired. */
async function untilExpired(accessToken) {
  const ms = claims(accessToken).exp * 1000 - Date.now() + 1200;
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

export function apolloTests(servers) {
  test("Apollo Client: a reload that kept only the refresh token refreshes once and retries", { timeout: 30_000 }, async () => {
    const server = servers.shortLived;
    const user = await register(server, "apollo-reload");
    const session = { accessToken: null, refreshToken: user.refreshToken };
    const counter = countingFetch();
    let signedOut = 0;
    const client = createAuthClient({ uri: server.graphqlURL, session, fetchFn: counter.fn, onSignOut: () => signedOut++ });

    const { data } = await client.query({ query: queries[1] });
    assert.equal(data.me.username, user.username);
    assert.equal(counter.count("Refresh"), 1, `requests: ${counter.sent}`);
    assert.deepEqual(counter.sent, ["Me", "Refresh", "Me"]);
    assert.equal(signedOut, 0);
    assert.notEqual(session.refreshToken, user.refreshToken, "the refresh token rotated");
  });

  test("Apollo Client: concurrent queries after a real expiry share one refreshToken, then REFRESH_TOKEN_INVALID signs out", { timeout: 60_000 }, async () => {
    const server = servers.shortLived;
    const user = await register(server, "apollo-expiry");
    const ttl = claims(user.accessToken).exp - claims(user.accessToken).iat;
    assert.equal(ttl, 10, "the short-lived server issues 10-second tokens");

    const session = { accessToken: user.accessToken, refreshToken: user.refreshToken };
    const counter = countingFetch();
    let signedOut = 0;
    const client = createAuthClient({ uri: server.graphqlURL, session, fetchFn: counter.fn, onSignOut: () => signedOut++ });

    const before = await client.query({ query: queries[0] });
    assert.equal(before.data.protected, "This is a protected endpoint.");

    await untilExpired(user.accessToken);
    // The server agrees that the token is expired.
    const raw = await gql(server, "{ protected }", {}, user.accessToken);
    assert.equal(raw.errors?.[0]?.extensions?.reason, "TOKEN_EXPIRED", JSON.stringify(raw));

    counter.sent.length = 0;
    const results = await Promise.all(queries.map((query) => client.query({ query })));
    assert.equal(results[0].data.protected, "This is a protected endpoint.");
    assert.equal(results[1].data.me.username, user.username);
    assert.equal(results[2].data.sessions.filter((s) => s.current).length, 1);
    assert.deepEqual(results[3].data.notes, []);
    assert.equal(results[4].data.again, "This is a protected endpoint.");
    assert.equal(counter.count("Refresh"), 1, `exactly one refreshToken mutation; requests: ${counter.sent}`);
    // Each query went out twice: once refused, once retried.
    assert.equal(counter.sent.length, queries.length * 2 + 1, `requests: ${counter.sent}`);
    assert.notEqual(session.accessToken, user.accessToken);
    assert.notEqual(session.refreshToken, user.refreshToken);
    assert.equal(signedOut, 0);

    // Someone replays the retired refresh token: outside the (zero) grace
    // window that is theft, and the server revokes the whole session.
    const replay = await gql(server, "mutation($t: String) { refreshToken(token: $t) { accessToken } }", { t: user.refreshToken });
    assert.equal(replay.errors?.[0]?.extensions?.reason, "REFRESH_TOKEN_INVALID", JSON.stringify(replay));

    // The client's access token is now revoked; its refresh is refused, and it signs out.
    counter.sent.length = 0;
    await assert.rejects(client.query({ query: queries[1] }), (err) => {
      assert.ok(CombinedGraphQLErrors.is(err), String(err));
      assert.equal(err.errors[0].extensions.code, "UNAUTHENTICATED");
      return true;
    });
    assert.deepEqual(counter.sent, ["Me", "Refresh"], "one refresh, no retry once it is refused");
    assert.equal(signedOut, 1, "signed out");
    assert.equal(session.accessToken, null);
    assert.equal(session.refreshToken, null);

    // Signed out: the next query goes out without a token and is not retried.
    counter.sent.length = 0;
    await assert.rejects(client.query({ query: queries[0] }), (err) => err.errors?.[0]?.extensions?.reason === "TOKEN_MISSING");
    assert.deepEqual(counter.sent, ["Protected"]);
  });
}
