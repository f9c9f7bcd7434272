// An Apollo Client 4 set up the way a Tollgate front end sets it up: an auth
// link that adds the access token, and an error link that, when a field
// answers UNAUTHENTICATED for a token it can fix, trades the refresh token for
// a new pair once (shared by every operation that failed meanwhile), retries,
// and signs out when the refresh token itself is refused.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { ErrorLink } from "@apollo/client/link/error";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { from, switchMap, throwError } from "rxjs";

const REFRESH = gql`
  mutation Refresh($token: String!) {
    refreshToken(token: $token) {
      accessToken
      refreshToken
    }
  }
`;

// The reasons a new access token cures, given a refresh token to get one
// with. TOKEN_MISSING and TOKEN_INVALID: a reload kept the refresh token and
// lost (or garbled) the access token. TOKEN_REVOKED: a role change revokes
// the access tokens but not the session, and the refresh brings the new role;
// a revoked session answers the refresh with REFRESH_TOKEN_INVALID instead,
// which signs out.
const refreshable = new Set(["TOKEN_EXPIRED", "TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_REVOKED"]);

/**
 * Creates the client. session holds { accessToken, refreshToken }; fetchFn is
 * the fetch the HttpLink uses (tests count requests through it).
 * onSignOut is called once when the session is given up.
 */
export function createAuthClient({ uri, session, fetchFn = fetch, onSignOut = () => {} }) {
  let refreshing = null;

  const authLink = new SetContextLink((prev) => {
    const token = session.accessToken;
    return {
      // Remember which token this attempt carried: a failure with a token
      // that has since been replaced needs a retry, not another refresh.
      sentToken: token,
      headers: { ...prev.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    };
  });

  function signOut() {
    session.accessToken = null;
    session.refreshToken = null;
    onSignOut();
  }

  // One refresh at a time, whoever asks: concurrent operations that fail on
  // the same expired token all wait for this one promise. Sending several
  // would rotate the refresh token several times, and outside the server's
  // reuse grace window a second use of a rotated token revokes the session.
  function refreshOnce() {
    refreshing ??= (async () => {
      const presented = session.refreshToken;
      const { data, error } = await client.mutate({
        mutation: REFRESH,
        variables: { token: presented },
        fetchPolicy: "no-cache",
        errorPolicy: "all",
        context: { skipAuthRetry: true },
      });
      if (data?.refreshToken) {
        session.accessToken = data.refreshToken.accessToken;
        session.refreshToken = data.refreshToken.refreshToken;
        return;
      }
      const reason = CombinedGraphQLErrors.is(error) ? error.errors[0]?.extensions?.reason : undefined;
      if (reason === "REFRESH_TOKEN_INVALID") signOut();
      throw error ?? new Error("refreshToken returned no data");
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  const errorLink = new ErrorLink(({ error, operation, forward }) => {
    if (!CombinedGraphQLErrors.is(error) || operation.getContext().skipAuthRetry) return;
    const auth = error.errors.find((e) => e.extensions?.code === "UNAUTHENTICATED");
    const reason = auth?.extensions?.reason;
    if (!session.refreshToken || !refreshable.has(reason)) return;
    // Retry at most once per operation: a second failure is the answer.
    if (operation.getContext().authRetried) return;
    operation.setContext({ authRetried: true });
    const sent = operation.getContext().sentToken;
    const ready = sent !== session.accessToken && session.accessToken ? Promise.resolve() : refreshOnce();
    // A failed refresh fails the operation with its own error, not the refresh's.
    return from(ready.then(() => true, () => false)).pipe(
      switchMap((ok) => (ok && session.accessToken ? forward(operation) : throwError(() => error))),
    );
  });

  const httpLink = new HttpLink({ uri, fetch: fetchFn });
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([errorLink, authLink, httpLink]),
    defaultOptions: {
      query: { fetchPolicy: "network-only", errorPolicy: "none" },
    },
  });
  return client;
}
