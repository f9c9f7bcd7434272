// Fetches for the clients under test: one that counts what goes through it,
// and one with a cookie jar, as a browser keeps the refresh cookie.
import makeFetchCookie from "fetch-cookie";
import { CookieJar } from "tough-cookie";

/** A fetch that records the operation name of each request it sends. */
export function countingFetch(inner = fetch) {
  const sent = [];
  const fn = async (input, init) => {
    const body = JSON.parse(init.body);
    sent.push(body.operationName ?? "(anonymous)");
    return inner(input, init);
  };
  return { fn, sent, count: (name) => sent.filter((n) => n === name).length };
}

/** A fetch that stores and sends cookies as a browser does; returns { fetch, jar }. */
export function cookieFetch() {
  const jar = new CookieJar();
  return { fetch: makeFetchCookie(fetch, jar), jar };
}
