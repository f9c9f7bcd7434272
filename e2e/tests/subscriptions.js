// The graphql-ws client, as the README shows it: the token in
// connectionParams, noteCreated delivered for a note created over HTTP, and
// the socket closed with 4403 once the session is logged out over HTTP. Then
// the README's frontend recipe (lib/frontend/subscriptions.js) across a real
// expiry: closed with 4403, it refreshes, reconnects and keeps receiving.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { gql, register } from "../lib/http.js";
import { countingFetch } from "../lib/fetch.js";
import { createSession } from "../lib/frontend/session.js";
import { createSubscriptionClient } from "../lib/frontend/subscriptions.js";
import { untilExpired } from "./apollo.js";

/** Resolves as promise does, or rejects naming what did not happen within ms. */
function within(ms, what, promise) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Creates notes over HTTP (with token) until next, the pending next() of a
 * noteCreated subscription, yields one. The server gives no ack for
 * subscribe, so a note created before it registered the subscription is
 * missed: creating until one arrives is the only race-free wait.
 */
async function deliveredWhileCreating(server, token, next, prefix) {
  for (let i = 0; i < 20; i++) {
    const body = await gql(server, "mutation($t: String!) { createNote(title: $t, body: \"b\") { id } }", { t: `${prefix} ${i}` }, token);
    assert.equal(body.errors, undefined, JSON.stringify(body.errors));
    const got = await Promise.race([next, new Promise((r) => setTimeout(() => r(null), 250))]);
    if (got) {
      assert.equal(got.done, false);
      assert.equal(got.value.errors, undefined, JSON.stringify(got.value.errors));
      assert.match(got.value.data.noteCreated.title, new RegExp(`^${prefix} \\d+$`));
      return got;
    }
  }
  assert.fail("no noteCreated event arrived for 20 notes");
}

export function subscriptionTests(servers) {
  test("graphql-ws: noteCreated arrives with the token in connectionParams; logout closes the socket with 4403", { timeout: 30_000 }, async () => {
    const server = servers.main;
    const user = await register(server, "ws");
    let closed;
    const closedEvent = new Promise((res) => (closed = res));
    let connected;
    const connectedEvent = new Promise((res) => (connected = res));
    const client = createClient({
      url: server.wsURL,
      webSocketImpl: WebSocket,
      connectionParams: () => ({ Authorization: `Bearer ${user.accessToken}` }),
      lazy: false,
      retryAttempts: 0,
      // The close is observed through on.closed; the default would print it.
      onNonLazyError: () => {},
      on: { connected: () => connected(), closed: (event) => closed(event) },
    });
    try {
      const sub = client.iterate({ query: "subscription { noteCreated { id title owner { username } } }" });
      await within(10_000, "connection_ack", connectedEvent);
      const got = await deliveredWhileCreating(server, user.accessToken, sub.next(), "note");
      assert.equal(got.value.data.noteCreated.owner.username, user.username);

      const out = await gql(server, "mutation { logout }", {}, user.accessToken);
      assert.deepEqual(out, { data: { logout: true } });
      const event = await within(10_000, "close after logout", closedEvent);
      assert.equal(event.code, 4403, `close code ${event.code} ${event.reason}`);
      await assert.rejects(sub.next(), (err) => err?.code === 4403 || String(err).includes("4403"));
    } finally {
      await client.dispose();
    }
  });
  test("graphql-ws recipe: the socket closed with 4403 at expiry reconnects with a refreshed token and keeps receiving noteCreated; a revoked session signs out and ends it", { timeout: 60_000 }, async () => {
    const server = servers.shortLived;
    const user = await register(server, "ws-expiry");
    const counter = countingFetch();
    let signedOut = 0;
    const session = createSession({ uri: server.graphqlURL, fetch: counter.fn, onSignOut: () => signedOut++ });
    session.signIn(user);
    const client = createSubscriptionClient({ url: server.wsURL, session, webSocketImpl: WebSocket });
    const events = [];
    let change;
    const changed = () => new Promise((r) => (change = r));
    client.on("connected", () => (events.push("connected"), change?.()));
    client.on("closed", (e) => (events.push(e.code), change?.()));
    try {
      const sub = client.iterate({ query: "subscription { noteCreated { id title owner { username } } }" });
      const before = await deliveredWhileCreating(server, session.state.accessToken, sub.next(), "before");
      assert.equal(before.value.data.noteCreated.owner.username, user.username);
      assert.deepEqual(events, ["connected"]);

      // The server closes the socket when the token it carried expires; the
      // client refreshes and opens a new one (after graphql-ws's retry wait).
      await untilExpired(user.accessToken);
      await within(15_000, "4403 and a new connection", (async () => {
        while (events.length < 3) await changed();
      })());
      assert.deepEqual(events, ["connected", 4403, "connected"]);
      assert.deepEqual(counter.sent, ["Refresh"], "one refresh before reconnecting");
      assert.notEqual(session.state.accessToken, user.accessToken);

      // The same subscription, resubscribed on the new socket, keeps delivering.
      const after = await deliveredWhileCreating(server, session.state.accessToken, sub.next(), "after");
      assert.equal(after.value.data.noteCreated.owner.username, user.username);
      assert.deepEqual(events, ["connected", 4403, "connected"]);

      // Someone replays the retired refresh token: the session is revoked, the
      // server closes the socket, and the client's refresh before reconnecting
      // is refused: it signs out, and the subscription ends with an error.
      const replay = await gql(server, "mutation($t: String) { refreshToken(token: $t) { accessToken } }", { t: user.refreshToken });
      assert.equal(replay.errors?.[0]?.extensions?.reason, "REFRESH_TOKEN_INVALID", JSON.stringify(replay));
      await assert.rejects(within(15_000, "the subscription ends", sub.next()), (err) => {
        assert.equal(err?.reason, "REFRESH_TOKEN_INVALID", `the refused refresh ends the subscription: ${err}`);
        return true;
      });
      // No third connection (the socket the client closed, 4005, may still be closing).
      assert.deepEqual(events.filter((e) => e !== 4005), ["connected", 4403, "connected", 4403]);
      assert.deepEqual(counter.sent, ["Refresh", "Refresh"]);
      assert.equal(signedOut, 1, "signed out");
      assert.equal(session.canRefresh(), false);
    } finally {
      await client.dispose();
    }
  });
}
