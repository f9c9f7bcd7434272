package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tollgate/db/dbtest"
)

// waitSockets polls until n sockets are registered.
func waitSockets(t *testing.T, s *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.App.Sockets.Len() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets registered, want %d", s.App.Sockets.Len(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// GoingAway closes every open socket with 1001, and a socket accepted after
// it (an upgrade that was in flight when the shutdown began) at once; Drain
// returns once their handlers have.
func TestSockets_GoingAwayClosesOpenAndLateSockets(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	open := dialRaw(t, s.URL, nil)
	open.init("")
	open.write(subscribeFrame("1", `subscription { noteCreated { id } }`)) // refused (no token): the socket stays
	waitSockets(t, s, 1)

	s.App.Sockets.GoingAway()
	open.wantClosed(websocket.StatusGoingAway, 5*time.Second)
	late := dialRaw(t, s.URL, nil)
	late.wantClosed(websocket.StatusGoingAway, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.App.Sockets.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if n := s.App.Sockets.Len(); n != 0 {
		t.Errorf("%d sockets still registered after Drain", n)
	}
}

// A client that never reads, and so never answers the close frame, holds
// the shutdown only until the WebSocket library gives up on the close
// handshake (5 s), well inside the server's 20 s grace period.
func TestSockets_SilentClientCannotHoldTheShutdown(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	silent := dialRaw(t, s.URL, nil)
	silent.init("")
	waitSockets(t, s, 1)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.App.Sockets.Drain(ctx); err != nil {
		t.Fatalf("Drain with a client that never reads: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Drain took %v with a client that never reads, want the close handshake's 5 s bound", took)
	}
	// What the client finds when it reads at last: the close frame was sent.
	silent.wantClosed(websocket.StatusGoingAway, time.Second)
}

// Past the grace period (Drain's context), the sockets still open are cut:
// none outlives the server, whose database closes next.
func TestSockets_DrainCutsWhatOutlivesTheGrace(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	silent := dialRaw(t, s.URL, nil)
	silent.init("")
	waitSockets(t, s, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.App.Sockets.Drain(ctx); err == nil {
		t.Fatal("Drain = nil with a client that never answers and 100 ms to wait, want an error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Drain took %v past its 100 ms deadline", took)
	}
	waitSockets(t, s, 0)
	// The client got the 1001 frame, then the connection went.
	silent.wantClosed(websocket.StatusGoingAway, time.Second)
}
