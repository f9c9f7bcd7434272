package api_test

import (
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

type noteOut struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	CreatedAt string `json:"createdAt"`
	Owner     user   `json:"owner"`
}

const noteFields = `id title body createdAt owner { id username role }`

func (s *testServer) createNote(t *testing.T, token, title, body string) noteOut {
	t.Helper()
	var n noteOut
	s.post(t, token, `mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { `+noteFields+` } }`,
		map[string]any{"t": title, "b": body}).field(t, "createNote", &n)
	return n
}

func (s *testServer) note(t *testing.T, token, id string) gqlResponse {
	t.Helper()
	return s.post(t, token, `query($id: ID!) { note(id: $id) { `+noteFields+` } }`, map[string]any{"id": id})
}

func (s *testServer) deleteNote(t *testing.T, token, id string) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($id: ID!) { deleteNote(id: $id) }`, map[string]any{"id": id})
}

func (s *testServer) notes(t *testing.T, token string) []noteOut {
	t.Helper()
	var out []noteOut
	s.post(t, token, `{ notes { `+noteFields+` } }`, nil).field(t, "notes", &out)
	return out
}

// A USER never sees another user's note through any path, and is told it
// does not exist; an ADMIN may read and delete any note.
func TestNotes_Ownership(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		alice := s.register(t, "alice", "correct horse")
		bob := s.register(t, "bob", "correct horse")

		n := s.createNote(t, alice.AccessToken, "Shopping", "milk, eggs")
		if n.Owner.ID != alice.User.ID || n.Owner.Username != "alice" || n.Title != "Shopping" || n.CreatedAt != "2026-03-01T12:00:00Z" {
			t.Fatalf("created %+v", n)
		}
		// The owner reads it.
		var got noteOut
		s.note(t, alice.AccessToken, n.ID).field(t, "note", &got)
		if got != n {
			t.Errorf("note = %+v, want %+v", got, n)
		}
		if mine := s.notes(t, alice.AccessToken); len(mine) != 1 || mine[0] != n {
			t.Errorf("alice's notes = %+v", mine)
		}

		// Bob: not found, exactly as for a note that does not exist.
		foreign := s.note(t, bob.AccessToken, n.ID)
		missing := s.note(t, bob.AccessToken, "no-such-note")
		foreign.wantError(t, "NOT_FOUND", "")
		missing.wantError(t, "NOT_FOUND", "")
		if foreign.Errors[0].Message != missing.Errors[0].Message {
			t.Errorf("a foreign note is told apart from a missing one: %q vs %q", foreign.Errors[0].Message, missing.Errors[0].Message)
		}
		if strings.Contains(foreign.Raw, "Shopping") {
			t.Errorf("the foreign note leaks: %s", foreign.Raw)
		}
		if mine := s.notes(t, bob.AccessToken); len(mine) != 0 {
			t.Errorf("bob's notes = %+v", mine)
		}
		s.deleteNote(t, bob.AccessToken, n.ID).wantError(t, "NOT_FOUND", "")
		s.note(t, alice.AccessToken, n.ID).field(t, "note", &got) // still there

		// Without a token, nothing.
		s.note(t, "", n.ID).wantError(t, "UNAUTHENTICATED", "TOKEN_MISSING")
		s.deleteNote(t, "", n.ID).wantError(t, "UNAUTHENTICATED", "TOKEN_MISSING")

		// The ADMIN reads any note, with its owner, but lists only their own.
		s.note(t, admin.AccessToken, n.ID).field(t, "note", &got)
		if got.Owner.ID != alice.User.ID {
			t.Errorf("admin sees owner %+v", got.Owner)
		}
		if mine := s.notes(t, admin.AccessToken); len(mine) != 0 {
			t.Errorf("admin's notes = %+v", mine)
		}
		if res := s.deleteNote(t, admin.AccessToken, n.ID); string(res.Data["deleteNote"]) != "true" {
			t.Fatalf("admin delete: %s", res.Raw)
		}
		s.note(t, alice.AccessToken, n.ID).wantError(t, "NOT_FOUND", "")
		s.deleteNote(t, alice.AccessToken, n.ID).wantError(t, "NOT_FOUND", "")

		// The owner deletes their own.
		n2 := s.createNote(t, alice.AccessToken, "Second", "")
		if res := s.deleteNote(t, alice.AccessToken, n2.ID); string(res.Data["deleteNote"]) != "true" {
			t.Fatalf("owner delete: %s", res.Raw)
		}
	})
}

func TestNotes_BadInput(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	alice := s.register(t, "alice", "correct horse")
	for _, tc := range []struct{ title, body, field string }{
		{"", "body", "title"},
		{strings.Repeat("t", 201), "body", "title"},
		{"title", strings.Repeat("b", 64<<10+1), "body"},
	} {
		res := s.post(t, alice.AccessToken, `mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { id } }`,
			map[string]any{"t": tc.title, "b": tc.body})
		if e := res.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != tc.field {
			t.Errorf("field = %v, want %s", e.Extensions["field"], tc.field)
		}
	}
	if n := s.notes(t, alice.AccessToken); len(n) != 0 {
		t.Errorf("refused notes were stored: %+v", n)
	}
}

// Note.owner goes through a dataloader: listing N notes with their owner
// costs one query for the list and one for the owners, not one per note.
// (graph's TestUserLoader_BatchesOwners shows N different owners in one query.)
func TestNotes_ListWithOwnersCostsTwoQueries(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		u := s.register(t, "alice", "correct horse")
		for range 5 {
			s.createNote(t, u.AccessToken, "note", "body")
		}
		before := s.App.Store.Queries()
		list := s.notes(t, u.AccessToken)
		if used := s.App.Store.Queries() - before; used != 2 {
			t.Errorf("%d queries for a list of 5 notes with owners, want 2", used)
		}
		if len(list) != 5 || list[4].Owner.Username != "alice" {
			t.Errorf("notes = %+v", list)
		}
	})
}
