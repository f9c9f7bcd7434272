package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// wsClient speaks graphql-transport-ws, the protocol of the graphql-ws
// client: a rawSocket that answers pings.
type wsClient struct{ *rawSocket }

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialWS opens a socket to s and sends connection_init with payload.
func (s *testServer) dialWS(t *testing.T, header http.Header, payload map[string]any) (*wsClient, error) {
	t.Helper()
	conn, err := openSocket(t, s.URL, header)
	if err != nil {
		return nil, err
	}
	c := &wsClient{&rawSocket{t: t, conn: conn, answerPings: true}}
	init, _ := json.Marshal(payload)
	c.send(wsMessage{Type: "connection_init", Payload: init})
	return c, nil
}

// connect dials with a bearer token (or none) and expects connection_ack.
func (s *testServer) connect(t *testing.T, token string) *wsClient {
	t.Helper()
	payload := map[string]any{}
	if token != "" {
		payload["Authorization"] = "Bearer " + token
	}
	c, err := s.dialWS(t, nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.next(5 * time.Second); m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v", m)
	}
	return c
}

func (c *wsClient) send(m wsMessage) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(string(b))
}

const noteCreated = `subscription { noteCreated { id title owner { username } } }`

func (c *wsClient) subscribe(id, query string) {
	c.t.Helper()
	p, _ := json.Marshal(map[string]any{"query": query})
	c.send(wsMessage{ID: id, Type: "subscribe", Payload: p})
}

// wantNote expects the next message to carry a noteCreated with title.
func (c *wsClient) wantNote(title string) {
	c.t.Helper()
	m := c.next(5 * time.Second)
	if m.Type != "next" || !strings.Contains(string(m.Payload), `"title":"`+title+`"`) {
		c.t.Fatalf("want note %q, got %s %s", title, m.Type, m.Payload)
	}
}

// A subscriber gets its own new notes and never another user's.
func TestSubscription_DeliversOnlyTheOwnersNotes(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		alice := s.register(t, "alice", "correct horse")
		bob := s.register(t, "bob", "correct horse")
		aliceWS := s.connect(t, alice.AccessToken)
		aliceWS.subscribe("1", noteCreated)
		bobWS := s.connect(t, bob.AccessToken)
		bobWS.subscribe("1", noteCreated)
		adminWS := s.connect(t, admin.AccessToken) // an ADMIN sees only their own too
		adminWS.subscribe("1", noteCreated)
		waitSubscribed(t, s, 3)

		s.createNote(t, alice.AccessToken, "for alice", "secret")
		aliceWS.wantNote("for alice")
		// Bob's first message is his own note: alice's never reached him.
		s.createNote(t, bob.AccessToken, "for bob", "")
		bobWS.wantNote("for bob")
		s.createNote(t, admin.AccessToken, "for admin", "")
		adminWS.wantNote("for admin")
		// A second device of alice gets hers as well.
		phone := s.connect(t, s.mustLogin(t, "alice", "correct horse").AccessToken)
		phone.subscribe("7", noteCreated)
		waitSubscribed(t, s, 4)
		s.createNote(t, alice.AccessToken, "again", "")
		aliceWS.wantNote("again")
		phone.wantNote("again")
	})
}

// waitSubscribed waits until n subscriptions are registered, so that a note
// created next is not published before anyone listens.
func waitSubscribed(t *testing.T, s *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.App.Notes.Subscribers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", s.App.Notes.Subscribers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Without a token the socket is accepted, and @auth fields answer UNAUTHENTICATED.
func TestSubscription_WithoutTokenIsUnauthenticated(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	c := s.connect(t, "")
	c.subscribe("1", noteCreated)
	m := c.next(5 * time.Second)
	if m.Type != "error" || m.ID != "1" {
		t.Fatalf("want an error message, got %s %s", m.Type, m.Payload)
	}
	var errs []gqlError
	if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	if errs[0].Extensions["code"] != "UNAUTHENTICATED" || errs[0].Extensions["reason"] != "TOKEN_MISSING" {
		t.Errorf("error = %+v", errs[0])
	}
}

// A token that is present but unusable closes the socket at once with 4403.
func TestSubscription_InvalidTokenIsClosedWith4403(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		revoked := s.mustLogin(t, "alice", "correct horse")
		s.post(t, revoked.AccessToken, `mutation { logout }`, nil)
		for name, authorization := range map[string]string{
			"garbage":     "Bearer garbage",
			"not bearer":  "Basic YWxpY2U6cGFzcw==",
			"revoked":     "Bearer " + revoked.AccessToken,
			"other key":   "Bearer " + forgeOtherKey(t, p),
			"lower-case":  "", // covered below with the lower-case key
			"no 'Bearer'": p.AccessToken,
		} {
			if authorization == "" {
				continue
			}
			t.Run(name, func(t *testing.T) {
				c, err := s.dialWS(t, nil, map[string]any{"Authorization": authorization})
				if err != nil {
					t.Fatal(err)
				}
				c.wantClosed(4403, time.Second)
			})
		}
		t.Run("lower-case key", func(t *testing.T) {
			c, err := s.dialWS(t, nil, map[string]any{"authorization": "Bearer garbage"})
			if err != nil {
				t.Fatal(err)
			}
			c.wantClosed(4403, time.Second)
		})
		t.Run("expired", func(t *testing.T) {
			s.Clock.Advance(16 * time.Minute)
			defer s.Clock.Advance(-16 * time.Minute)
			c, err := s.dialWS(t, nil, map[string]any{"Authorization": "Bearer " + p.AccessToken})
			if err != nil {
				t.Fatal(err)
			}
			c.wantClosed(4403, time.Second)
		})
	})
}

func forgeOtherKey(t *testing.T, p authPayload) string {
	t.Helper()
	return forge(t, jwtHS256(), []byte("another-secret-another-secret-12345"), map[string]any{"typ": "at+jwt", "kid": testKID(t)}, validClaims(t, p, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
}

// An open socket is closed with 4403 within a second of its session's
// logout, of its token's expiry, and of its user's role change.
func TestSubscription_ClosedWhenTheTokenStopsBeingValid(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		alice := s.register(t, "alice", "correct horse")

		t.Run("logout", func(t *testing.T) {
			p := s.mustLogin(t, "alice", "correct horse")
			c := s.connect(t, p.AccessToken)
			c.subscribe("1", noteCreated)
			s.post(t, p.AccessToken, `mutation { logout }`, nil)
			c.wantClosed(4403, time.Second)
		})
		t.Run("expiry", func(t *testing.T) {
			p := s.mustLogin(t, "alice", "correct horse")
			c := s.connect(t, p.AccessToken)
			c.subscribe("1", noteCreated)
			s.Clock.Advance(15*time.Minute + 6*time.Second)
			c.wantClosed(4403, time.Second)
		})
		t.Run("role change", func(t *testing.T) {
			admin = s.mustLogin(t, "root", "admin password")
			p := s.mustLogin(t, "alice", "correct horse")
			c := s.connect(t, p.AccessToken)
			c.subscribe("1", noteCreated)
			s.setRole(t, admin.AccessToken, alice.User.ID, "ADMIN")
			c.wantClosed(4403, time.Second)
		})
	})
}

// Two instances share PostgreSQL: a note created on A reaches its owner's
// subscription on B, and nobody else's; a logout on A closes the socket on B.
func TestSubscription_AcrossInstances(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	a := newTestServer(t, url, nil)
	b := newTestServer(t, url, nil)
	alice := a.register(t, "alice", "correct horse")
	bob := a.register(t, "bob", "correct horse")
	aliceWS := b.connect(t, alice.AccessToken)
	aliceWS.subscribe("1", noteCreated)
	bobWS := b.connect(t, bob.AccessToken)
	bobWS.subscribe("1", noteCreated)
	waitSubscribed(t, b, 2)

	a.createNote(t, alice.AccessToken, "from A", "")
	aliceWS.wantNote("from A")
	a.createNote(t, bob.AccessToken, "bob's", "")
	bobWS.wantNote("bob's") // and not alice's before it

	a.post(t, alice.AccessToken, `mutation { logout }`, nil)
	aliceWS.wantClosed(4403, time.Second)
}

// The upgrade checks the Origin as CORS does: the server's own and the
// listed origins only (clients that send no Origin are not browsers).
func TestSubscription_OriginIsChecked(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"CORS_ORIGINS": "https://app.example.com"})
	if _, err := s.dialWS(t, http.Header{"Origin": {"https://evil.example.com"}}, nil); err == nil {
		t.Error("a socket from another origin was accepted")
	}
	c, err := s.dialWS(t, http.Header{"Origin": {"https://app.example.com"}}, nil)
	if err != nil {
		t.Fatalf("a listed origin was refused: %v", err)
	}
	if m := c.next(5 * time.Second); m.Type != "connection_ack" {
		t.Errorf("got %+v", m)
	}
	if _, err := s.dialWS(t, http.Header{"Origin": {s.URL}}, nil); err != nil {
		t.Errorf("the server's own origin was refused: %v", err)
	}
}
