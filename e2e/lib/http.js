// Plain GraphQL-over-HTTP calls, for the set-up and the checks around the
// clients under test (which make their own requests).
import { randomBytes } from "node:crypto";

/** POSTs one operation as JSON and returns the parsed body; throws on a non-JSON answer. */
export async function gql(server, query, variables = {}, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(server.graphqlURL, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status} from ${server.graphqlURL}: ${text.slice(0, 200)}`);
  }
}

/** A username no other test uses. */
export function uniqueName(prefix) {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** The password every test user gets; never a real secret. */
export const password = "correct horse battery";

/** Registers a new user; returns { username, accessToken, refreshToken }. */
export async function register(server, prefix) {
  const username = uniqueName(prefix);
  const body = await gql(
    server,
    "mutation($u: String!, $p: String!) { register(username: $u, password: $p) { accessToken refreshToken } }",
    { u: username, p: password },
  );
  if (body.errors) throw new Error(`register: ${JSON.stringify(body.errors)}`);
  return { username, ...body.data.register };
}

/** The claims of a JWT, decoded without verification (the server verifies). */
export function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
}
