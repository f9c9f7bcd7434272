// apollo.js: Apollo Client 4 with an auth link that adds the access token and
// an error link that refreshes (once for every operation that failed
// meanwhile) and retries each failed operation once.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { ErrorLink } from "@apollo/client/link/error";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { from, switchMap, throwError } from "rxjs";
import { refreshable } from "./session.js";

/** An ApolloClient for uri whose operations carry session's access token. */
export function createApolloClient({ uri, session, fetch = globalThis.fetch }) {
  const authLink = new SetContextLink((prev) => {
    const token = session.state.accessToken;
    return {
      // The token this attempt carried: a failure with a token that has since
      // been replaced needs a retry, not another refresh.
      sentToken: token,
      headers: { ...prev.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    };
  });

  const errorLink = new ErrorLink(({ error, operation, forward }) => {
    if (!CombinedGraphQLErrors.is(error)) return;
    const reason = error.errors.find((e) => e.extensions?.code === "UNAUTHENTICATED")?.extensions?.reason;
    if (!refreshable.has(reason) || !session.canRefresh()) return;
    // Retry at most once per operation: a second failure is the answer.
    if (operation.getContext().authRetried) return;
    operation.setContext({ authRetried: true });
    const current = session.state.accessToken;
    const ready = current && current !== operation.getContext().sentToken ? Promise.resolve() : session.refresh();
    // A failed refresh fails the operation with the operation's own error.
    return from(ready.then(() => true, () => false)).pipe(
      switchMap((ok) => (ok && session.state.accessToken ? forward(operation) : throwError(() => error))),
    );
  });

  return new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([
      errorLink,
      authLink,
      // Cookie sessions: login, register and logout set or clear the refresh
      // cookie, so they need credentials too when the API is on another origin.
      new HttpLink({ uri, fetch, credentials: session.cookie ? "include" : "same-origin" }),
    ]),
  });
}
