// The graphql-ws client, as the README shows it: the token in
// connectionParams, noteCreated delivered for a note created over HTTP, and
// the socket closed with 4403 once the session is logged out over HTTP.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { gql, register } from "../lib/http.js";

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
      // The subscribe message is sent on the first next(); the note must be
      // created after the server registered it, so wait for the first event
      // while creating notes until one arrives (the server gives no ack for subscribe).
      const first = sub.next();
      let created;
      for (let i = 0; i < 20; i++) {
        const body = await gql(server, "mutation($t: String!) { createNote(title: $t, body: \"b\") { id } }", { t: `note ${i}` }, user.accessToken);
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        created = body.data.createNote.id;
        const got = await Promise.race([first, new Promise((r) => setTimeout(() => r(null), 250))]);
        if (got) {
          assert.equal(got.done, false);
          assert.equal(got.value.errors, undefined, JSON.stringify(got.value.errors));
          assert.equal(got.value.data.noteCreated.owner.username, user.username);
          assert.match(got.value.data.noteCreated.title, /^note \d+$/);
          created = null;
          break;
        }
      }
      assert.equal(created, null, "a noteCreated event arrived");

      const out = await gql(server, "mutation { logout }", {}, user.accessToken);
      assert.deepEqual(out, { data: { logout: true } });
      const event = await within(10_000, "close after logout", closedEvent);
      assert.equal(event.code, 4403, `close code ${event.code} ${event.reason}`);
      await assert.rejects(sub.next(), (err) => err?.code === 4403 || String(err).includes("4403"));
    } finally {
      await client.dispose();
    }
  });
}
