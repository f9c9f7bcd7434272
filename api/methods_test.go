package api_test

import (
	"net/http"
	"testing"

	"tollgate/db/dbtest"
)

// Any method but GET, POST and OPTIONS is 405 with Allow and the JSON
// BAD_REQUEST body, bare or dressed as JSON, before the CSRF guard could
// take a bare one for a cross-site request (it answered 400).
func TestRequest_OtherMethodsAre405(t *testing.T) {
	for _, cors := range []string{"", "https://app.example.com"} {
		s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"CORS_ORIGINS": cors})
		for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, "PROPFIND"} {
			for name, header := range map[string]http.Header{
				"bare":   {},
				"JSON":   {"Content-Type": {"application/json"}},
				"origin": {"Content-Type": {"text/plain"}, "Origin": {"https://evil.example"}},
			} {
				res := s.send(t, method, "/graphql", header, `{"query":"{ __typename }"}`)
				if res.Status != http.StatusMethodNotAllowed {
					t.Errorf("%s (%s, CORS_ORIGINS=%q): status %d %s, want 405", method, name, cors, res.Status, res.Raw)
					continue
				}
				if got, want := res.Header.Get("Allow"), "GET, POST, OPTIONS"; got != want {
					t.Errorf("%s (%s): Allow %q, want %q", method, name, got, want)
				}
				if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "BAD_REQUEST" || res.Data != nil {
					t.Errorf("%s (%s): body %s, want one BAD_REQUEST error and no data", method, name, res.Raw)
				}
			}
		}
		// HEAD has no body to carry the error; its status and Allow still say it.
		head, err := http.Head(s.URL + "/graphql")
		if err != nil {
			t.Fatal(err)
		}
		head.Body.Close()
		if head.StatusCode != http.StatusMethodNotAllowed || head.Header.Get("Allow") != "GET, POST, OPTIONS" {
			t.Errorf("HEAD: status %d, Allow %q; want 405 with Allow", head.StatusCode, head.Header.Get("Allow"))
		}
		// The control: the served methods are not refused for their method.
		if res := s.post(t, "", `{ __typename }`, nil); res.Status != http.StatusOK {
			t.Errorf("POST: %d %s", res.Status, res.Raw)
		}
		if res := s.send(t, http.MethodOptions, "/graphql", http.Header{}, ""); res.Status == http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS: 405")
		}
		if res := s.send(t, http.MethodGet, "/graphql?query=%7B__typename%7D", http.Header{"Apollo-Require-Preflight": {"1"}}, ""); res.Status != http.StatusOK {
			t.Errorf("GET: %d %s", res.Status, res.Raw)
		}
	}
}
