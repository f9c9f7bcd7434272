// session.js: what the front end knows of its Tollgate session, and the one
// refresh that the Apollo links and the WebSocket client share.
const REFRESH = "mutation Refresh($token: String) { refreshToken(token: $token) { accessToken refreshToken } }";

// UNAUTHENTICATED reasons that a new access token cures, when there is a
// refresh token to get one with: TOKEN_EXPIRED (the usual case), TOKEN_MISSING
// (a reload kept only the refresh token), TOKEN_INVALID (a garbled token, or
// one signed with a key that has since been retired) and TOKEN_REVOKED (a role
// change revokes the access tokens, not the session: the refresh brings the
// new role). Where the session itself is gone, the refresh answers
// REFRESH_TOKEN_INVALID and the user must sign in again.
export const refreshable = new Set(["TOKEN_EXPIRED", "TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_REVOKED"]);

/**
 * The session of one app: its tokens, signIn, signOut and the shared refresh.
 * cookie: false for a bearer session (the client holds the refresh token),
 * true for a cookie session (login/register with cookie: true put it in an
 * HttpOnly cookie that script cannot read). refreshToken (bearer) or signedIn
 * (cookie) resumes a session after a reload. onSignOut runs when the session
 * is over: show the login page, and clear the Apollo cache.
 */
export function createSession({ uri, cookie = false, refreshToken = null, signedIn = refreshToken != null, fetch = globalThis.fetch, onSignOut = () => {} }) {
  // In memory only. The access token never goes to storage; a bearer app that
  // keeps its refresh token across reloads puts it where its threat model
  // allows, and a cookie session needs no more than a "signed in" flag.
  const state = { accessToken: null, refreshToken, signedIn };
  let refreshing = null;

  function signOut() {
    Object.assign(state, { accessToken: null, refreshToken: null, signedIn: false });
    onSignOut();
  }

  return {
    state,
    cookie,
    /** Keeps the AuthPayload of login, register or verifyTotp. */
    signIn(payload) {
      Object.assign(state, { accessToken: payload.accessToken, refreshToken: payload.refreshToken ?? null, signedIn: true });
    },
    signOut,
    /** Whether a refresh could bring a new access token. */
    canRefresh: () => (cookie ? state.signedIn : state.refreshToken != null),
    // One refresh at a time, whoever asks: everything that fails on the same
    // expired token waits for this one promise. Several refreshes would rotate
    // the refresh token several times, and outside the server's reuse grace a
    // second use of a rotated token is taken for theft: the session is revoked.
    refresh() {
      refreshing ??= (async () => {
        const res = await fetch(uri, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          // A cookie session's refresh token travels in its cookie: "include"
          // sends it to an API on another origin (listed in CORS_ORIGINS).
          credentials: cookie ? "include" : "same-origin",
          body: JSON.stringify({ operationName: "Refresh", query: REFRESH, variables: cookie ? {} : { token: state.refreshToken } }),
        });
        const body = await res.json();
        const pair = body.data?.refreshToken;
        if (pair) {
          state.accessToken = pair.accessToken;
          if (!cookie) state.refreshToken = pair.refreshToken;
          return;
        }
        const reason = body.errors?.[0]?.extensions?.reason;
        // Only this answer ends the session; a network error or a 5xx may pass.
        if (reason === "REFRESH_TOKEN_INVALID") signOut();
        throw Object.assign(new Error(`refresh failed: ${reason ?? `HTTP ${res.status}`}`), { reason });
      })().finally(() => {
        refreshing = null;
      });
      return refreshing;
    },
  };
}
