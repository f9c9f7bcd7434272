// subscriptions.js: graphql-ws with the current access token in every
// connection_init. Tollgate closes a socket with 4403 when its token expires
// or is revoked; the client then reconnects, refreshing first, and its
// subscriptions resume on the new socket.
import { createClient } from "graphql-ws";

/** A graphql-ws client for url (ws:// or wss://) that authenticates with session. */
export function createSubscriptionClient({ url, session, webSocketImpl }) {
  let sent = null; // the token the current socket's connection_init carried
  let refused = null; // the token the server refused with 4403
  return createClient({
    url,
    webSocketImpl,
    // Called for every connection, so each one carries the newest token. A
    // refused token is refreshed first (unless an HTTP request already did).
    connectionParams: async () => {
      const token = session.state.accessToken;
      if (session.canRefresh() && (!token || token === refused)) await session.refresh();
      sent = session.state.accessToken;
      return sent ? { Authorization: `Bearer ${sent}` } : {};
    },
    // Close events are retried (up to graphql-ws's retryAttempts, 5), 4403
    // only while a refresh could cure it: a refresh refused with
    // REFRESH_TOKEN_INVALID signs out, and that ends the subscriptions.
    shouldRetry: (event) => event?.code !== undefined && (event.code !== 4403 || session.canRefresh()),
    on: {
      closed: (event) => {
        if (event?.code === 4403) refused = sent;
      },
    },
  });
}
