// Apollo Client 4 with the README's frontend recipe (lib/frontend/, which the
// README shows byte for byte), across a real expiry: the short-lived server
// issues 10-second access tokens with no leeway and no refresh-reuse grace.
// Bearer sessions hold the refresh token; cookie sessions keep it in the
// HttpOnly cookie, here in a cookie jar around fetch as a browser keeps it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gql as tag } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { createSession } from "../lib/frontend/session.js";
import { createApolloClient } from "../lib/frontend/apollo.js";
import { cookieFetch, countingFetch } from "../lib/fetch.js";
import { claims, gql, password, register, uniqueName } from "../lib/http.js";

const queries = [
  tag`query Protected { protected }`,
  tag`query Me { me { username } }`,
  tag`query Sessions { sessions { id current } }`,
  tag`query Notes { notes { id } }`,
  tag`query ProtectedAgain { again: protected }`,
];

/** Every query from the network: the recipe leaves Apollo's cache-first default to the app. */
const query = (client, q) => client.query({ query: q, fetchPolicy: "network-only" });

/** Waits (real time: the server's clock cannot be moved) until the token has expired. */
export async function untilExpired(accessToken) {
  const ms = claims(accessToken).exp * 1000 - Date.now() + 1200;
  if (ms > 0) await new Promise((r) => setTimeout(r, ms));
}

/** Runs the five queries at once and checks every answer. */
async function allFive(client, username) {
  const results = await Promise.all(queries.map((q) => query(client, q)));
  assert.equal(results[0].data.protected, "This is a protected endpoint.");
  assert.equal(results[1].data.me.username, username);
  assert.equal(results[2].data.sessions.filter((s) => s.current).length, 1);
  assert.deepEqual(results[3].data.notes, []);
  assert.equal(results[4].data.again, "This is a protected endpoint.");
}

/** The query is refused UNAUTHENTICATED, with reason when given. */
function refused(reason) {
  return (err) => {
    assert.ok(CombinedGraphQLErrors.is(err), String(err));
    assert.equal(err.errors[0].extensions.code, "UNAUTHENTICATED");
    if (reason) assert.equal(err.errors[0].extensions.reason, reason);
    return true;
  };
}

export function apolloTests(servers) {
  test("Apollo Client: a reload that kept only the refresh token refreshes once and retries", { timeout: 30_000 }, async () => {
    const server = servers.shortLived;
    const user = await register(server, "apollo-reload");
    const counter = countingFetch();
    let signedOut = 0;
    const session = createSession({ uri: server.graphqlURL, refreshToken: user.refreshToken, fetch: counter.fn, onSignOut: () => signedOut++ });
    const client = createApolloClient({ uri: server.graphqlURL, session, fetch: counter.fn });

    const { data } = await query(client, queries[1]);
    assert.equal(data.me.username, user.username);
    assert.deepEqual(counter.sent, ["Me", "Refresh", "Me"]);
    assert.equal(signedOut, 0);
    assert.notEqual(session.state.refreshToken, user.refreshToken, "the refresh token rotated");
  });

  test("Apollo Client: concurrent queries after a real expiry share one refreshToken, then REFRESH_TOKEN_INVALID signs out", { timeout: 60_000 }, async () => {
    const server = servers.shortLived;
    const user = await register(server, "apollo-expiry");
    const ttl = claims(user.accessToken).exp - claims(user.accessToken).iat;
    assert.equal(ttl, 10, "the short-lived server issues 10-second tokens");

    const counter = countingFetch();
    let signedOut = 0;
    const session = createSession({ uri: server.graphqlURL, fetch: counter.fn, onSignOut: () => signedOut++ });
    session.signIn(user);
    const client = createApolloClient({ uri: server.graphqlURL, session, fetch: counter.fn });

    const before = await query(client, queries[0]);
    assert.equal(before.data.protected, "This is a protected endpoint.");

    await untilExpired(user.accessToken);
    // The server agrees that the token is expired.
    const raw = await gql(server, "{ protected }", {}, user.accessToken);
    assert.equal(raw.errors?.[0]?.extensions?.reason, "TOKEN_EXPIRED", JSON.stringify(raw));

    counter.sent.length = 0;
    await allFive(client, user.username);
    assert.equal(counter.count("Refresh"), 1, `exactly one refreshToken mutation; requests: ${counter.sent}`);
    // Each query went out twice: once refused, once retried.
    assert.equal(counter.sent.length, queries.length * 2 + 1, `requests: ${counter.sent}`);
    assert.notEqual(session.state.accessToken, user.accessToken);
    assert.notEqual(session.state.refreshToken, user.refreshToken);
    assert.equal(signedOut, 0);

    // Someone replays the retired refresh token: outside the (zero) grace
    // window that is theft, and the server revokes the whole session.
    const replay = await gql(server, "mutation($t: String) { refreshToken(token: $t) { accessToken } }", { t: user.refreshToken });
    assert.equal(replay.errors?.[0]?.extensions?.reason, "REFRESH_TOKEN_INVALID", JSON.stringify(replay));

    // The client's access token is now revoked; its refresh is refused, and it signs out.
    counter.sent.length = 0;
    await assert.rejects(query(client, queries[1]), refused("TOKEN_REVOKED"));
    assert.deepEqual(counter.sent, ["Me", "Refresh"], "one refresh, no retry once it is refused");
    assert.equal(signedOut, 1, "signed out");
    assert.deepEqual(session.state, { accessToken: null, refreshToken: null, signedIn: false });

    // Signed out: the next query goes out without a token and is not retried.
    counter.sent.length = 0;
    await assert.rejects(query(client, queries[0]), refused("TOKEN_MISSING"));
    assert.deepEqual(counter.sent, ["Protected"]);
  });

  test("Apollo Client, cookie session: concurrent queries after a real expiry share one cookie refresh, a reload resumes from the cookie, REFRESH_TOKEN_INVALID signs out", { timeout: 60_000 }, async () => {
    const server = servers.shortLived;
    const browser = cookieFetch();
    const counter = countingFetch(browser.fetch);
    let signedOut = 0;
    const session = createSession({ uri: server.graphqlURL, cookie: true, fetch: counter.fn, onSignOut: () => signedOut++ });
    const client = createApolloClient({ uri: server.graphqlURL, session, fetch: counter.fn });

    // Register through the client itself: the refresh token comes back as a cookie only.
    const username = uniqueName("apollo-cookie");
    const { data } = await client.mutate({
      mutation: tag`mutation Register($u: String!, $p: String!) { register(username: $u, password: $p, cookie: true) { accessToken refreshToken } }`,
      variables: { u: username, p: password },
    });
    assert.equal(data.register.refreshToken, null, "no refresh token in the body of a cookie session");
    session.signIn(data.register);
    const cookie = async () => {
      const all = await browser.jar.getCookies(server.url);
      assert.equal(all.length, 1, `one cookie: ${all.map((c) => c.key)}`);
      return all[0];
    };
    const first = await cookie();
    assert.equal(first.key, "tollgate_refresh", "the development cookie name over plain HTTP");
    assert.equal(first.httpOnly, true);
    assert.equal(first.sameSite, "strict");

    await untilExpired(data.register.accessToken);
    counter.sent.length = 0;
    await allFive(client, username);
    assert.equal(counter.count("Refresh"), 1, `exactly one refreshToken mutation; requests: ${counter.sent}`);
    assert.equal(counter.sent.length, queries.length * 2 + 1, `requests: ${counter.sent}`);
    assert.notEqual((await cookie()).value, first.value, "the refresh rotated the cookie");
    assert.notEqual(session.state.accessToken, data.register.accessToken);
    assert.equal(signedOut, 0);

    // A reload: the page keeps its cookie and a "signed in" flag, not the
    // access token; its first query answers TOKEN_MISSING and the cookie cures it.
    const reloadCounter = countingFetch(browser.fetch);
    const reloaded = createSession({ uri: server.graphqlURL, cookie: true, signedIn: true, fetch: reloadCounter.fn });
    const reloadedClient = createApolloClient({ uri: server.graphqlURL, session: reloaded, fetch: reloadCounter.fn });
    const me = await query(reloadedClient, queries[1]);
    assert.equal(me.data.me.username, username);
    assert.deepEqual(reloadCounter.sent, ["Me", "Refresh", "Me"]);

    // Someone replays the first, retired cookie: theft, and the session is revoked.
    const res = await fetch(server.graphqlURL, {
      method: "POST",
      headers: { "Content-Type": "application/json", Cookie: `${first.key}=${first.value}` },
      body: JSON.stringify({ query: "mutation { refreshToken { accessToken } }" }),
    });
    const replay = await res.json();
    assert.equal(replay.errors?.[0]?.extensions?.reason, "REFRESH_TOKEN_INVALID", JSON.stringify(replay));

    counter.sent.length = 0;
    await assert.rejects(query(client, queries[1]), refused("TOKEN_REVOKED"));
    assert.deepEqual(counter.sent, ["Me", "Refresh"], "one refresh, no retry once it is refused");
    assert.equal(signedOut, 1, "signed out");
    assert.deepEqual(session.state, { accessToken: null, refreshToken: null, signedIn: false });
    counter.sent.length = 0;
    await assert.rejects(query(client, queries[0]), refused("TOKEN_MISSING"));
    assert.deepEqual(counter.sent, ["Protected"], "signed out: no refresh is tried");
  });
}
