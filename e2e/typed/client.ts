// A small typed client: its operations are written with the graphql()
// function that @graphql-codegen/cli's client preset generates, so tsc checks
// every field and variable against the schema. The e2e suite generates
// "@tollgate/gql" (into a scratch directory) and type-checks this file.
import { ApolloClient, HttpLink, InMemoryCache } from "@apollo/client";
import { graphql } from "@tollgate/gql";
import type { Role } from "@tollgate/gql/graphql";

export const LoginDocument = graphql(`
  mutation Login($username: String!, $password: String!) {
    login(username: $username, password: $password) {
      accessToken
      refreshToken
      expiresIn
      user {
        id
        role
      }
    }
  }
`);

export const ProtectedDocument = graphql(`
  query Protected {
    protected
    me {
      username
      role
      createdAt
    }
  }
`);

export const CreateNoteDocument = graphql(`
  mutation CreateNote($title: String!, $body: String!) {
    createNote(title: $title, body: $body) {
      id
      title
      owner {
        username
      }
    }
  }
`);

export async function signIn(uri: string, username: string, password: string): Promise<{ token: string; role: Role }> {
  const client = new ApolloClient({ link: new HttpLink({ uri }), cache: new InMemoryCache() });
  const { data } = await client.mutate({ mutation: LoginDocument, variables: { username, password } });
  if (!data) throw new Error("no data");
  const seconds: number = data.login.expiresIn;
  // refreshToken is nullable in the schema (a cookie may carry it instead).
  const refresh: string | null | undefined = data.login.refreshToken;
  void seconds;
  void refresh;
  return { token: data.login.accessToken, role: data.login.user.role };
}

export async function whoAmI(client: ApolloClient): Promise<string> {
  const { data } = await client.query({ query: ProtectedDocument });
  if (!data) throw new Error("no data");
  const message: string = data.protected;
  // @ts-expect-error: the document does not select id, so it is not in the result type.
  void data.me.id;
  return `${message} ${data.me.username} (${data.me.role})`;
}

export async function addNote(client: ApolloClient, title: string): Promise<string> {
  // @ts-expect-error: body is a required variable.
  void client.mutate({ mutation: CreateNoteDocument, variables: { title } });
  const { data } = await client.mutate({ mutation: CreateNoteDocument, variables: { title, body: "from the typed client" } });
  return data?.createNote.owner.username ?? "";
}
