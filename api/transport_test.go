package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"tollgate/db/dbtest"
)

// Only "Upgrade: websocket" on a GET is an upgrade: a POST with curl's
// "Upgrade: h2c" is an ordinary JSON request (gqlgen's transports answered
// it 426 in plain text), and so is a GET query.
func TestRequest_UpgradeH2CIsAnOrdinaryRequest(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	h := http.Header{
		"Content-Type":   {"application/json"},
		"Upgrade":        {"h2c"},
		"Connection":     {"Upgrade, HTTP2-Settings"},
		"Http2-Settings": {"AAMAAABkAARAAAAAAAIAAAAA"},
	}
	res := s.send(t, "POST", "/graphql", h, `{"query":"{ __typename }"}`)
	if res.Status != 200 || string(res.Data["__typename"]) != `"Query"` {
		t.Errorf("POST with Upgrade: h2c: %d %s", res.Status, res.Raw)
	}
	h.Del("Content-Type")
	h.Set("Apollo-Require-Preflight", "true")
	res = s.send(t, "GET", "/graphql?query=%7B__typename%7D", h, "")
	if res.Status != 200 || string(res.Data["__typename"]) != `"Query"` {
		t.Errorf("GET with Upgrade: h2c: %d %s", res.Status, res.Raw)
	}
}

// Every refusal by the transports is JSON with a BAD_REQUEST code: a broken
// handshake, a method or a content type that GraphQL over HTTP does not use.
func TestRequest_TransportRefusalsAreJSON(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	without := func(name string) http.Header { h := upgradeHeader(); h.Del(name); return h }
	with := func(name, value string) http.Header { h := upgradeHeader(); h.Set(name, value); return h }
	for _, tc := range []struct {
		name, method string
		header       http.Header
		body         string
		status       int
	}{
		{"upgrade without Connection: Upgrade", "GET", without("Connection"), "", http.StatusUpgradeRequired},
		{"upgrade to an old WebSocket version", "GET", with("Sec-Websocket-Version", "8"), "", http.StatusUpgradeRequired},
		{"upgrade without a key", "GET", without("Sec-Websocket-Key"), "", http.StatusBadRequest},
		{"upgrade with a short key", "GET", with("Sec-Websocket-Key", "c2hvcnQ="), "", http.StatusBadRequest},
		{"upgrade with a body", "GET", upgradeHeader(), "{}", http.StatusBadRequest},
		{"PUT", "PUT", http.Header{"Content-Type": {"application/json"}}, `{"query":"{ __typename }"}`, http.StatusMethodNotAllowed},
		{"DELETE", "DELETE", http.Header{"Content-Type": {"application/json"}}, "", http.StatusMethodNotAllowed},
		{"XML", "POST", http.Header{"Content-Type": {"application/xml"}}, "<query/>", http.StatusUnsupportedMediaType},
		{"application/graphql", "POST", http.Header{"Content-Type": {"application/graphql"}}, "{ __typename }", http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.send(t, tc.method, "/graphql", tc.header, tc.body)
			if res.Status != tc.status {
				t.Errorf("status %d, want %d: %s", res.Status, tc.status, res.Raw)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q: %s", ct, res.Raw)
			}
			res.wantError(t, "BAD_REQUEST", "")
		})
	}
}

// An upgrade over a writer that cannot hand over its connection (a
// middleware wrapper without Unwrap, here a recorder) is refused once, as
// JSON, before the library would have answered 101 and then failed.
func TestSocket_UnhijackableWriterIsRefusedAsJSON(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	req := httptest.NewRequest("GET", "/graphql", nil)
	req.Header = upgradeHeader()
	rec := httptest.NewRecorder()
	s.App.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotImplemented || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var body struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != "BAD_REQUEST" {
		t.Errorf("body %q: %v", rec.Body, err)
	}
}
