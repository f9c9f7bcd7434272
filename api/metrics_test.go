package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// scrape is one reading of /metrics, through the real handler.
type scrape map[string]*dto.MetricFamily

func (s *testServer) scrape(t *testing.T) scrape {
	t.Helper()
	res := s.send(t, http.MethodGet, "/metrics", http.Header{}, "")
	if res.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", res.Status, res.Raw)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(res.Raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the counter or gauge of family name whose labels are exactly
// labels ("k=v" pairs), or a histogram's sample count; 0 when absent.
func (m scrape) value(name string, labels ...string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	for _, metric := range f.Metric {
		if len(metric.Label) != len(labels) {
			continue
		}
		match := true
		for i, lp := range metric.Label {
			// Labels come sorted by name; callers list them so.
			if lp.GetName()+"="+lp.GetValue() != labels[i] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case metric.Counter != nil:
			return metric.Counter.GetValue()
		case metric.Gauge != nil:
			return metric.Gauge.GetValue()
		case metric.Histogram != nil:
			return float64(metric.Histogram.GetSampleCount())
		}
	}
	return 0
}

// labelValues lists every label value of the scrape.
func (m scrape) labelValues() []string {
	var out []string
	for _, f := range m {
		for _, metric := range f.Metric {
			for _, lp := range metric.Label {
				out = append(out, lp.GetValue())
			}
		}
	}
	return out
}

// delta reports how far a counter moved between two scrapes.
func delta(before, after scrape, name string, labels ...string) float64 {
	return after.value(name, labels...) - before.value(name, labels...)
}

const attempts = "tollgate_auth_attempts_total"

// A successful login moves the success count by one and nothing else; a
// wrong password moves invalid_credentials by one. No label carries the
// username, the address or a token.
func TestMetrics_CountLoginOutcomes(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	before := s.scrape(t)
	reg := s.register(t, "alice", "correct horse")
	mid := s.scrape(t)
	if d := delta(before, mid, attempts, "action=register", "outcome=success"); d != 1 {
		t.Errorf("register success moved by %v, want 1", d)
	}

	p := s.mustLogin(t, "alice", "correct horse")
	after := s.scrape(t)
	if d := delta(mid, after, attempts, "action=login", "outcome=success"); d != 1 {
		t.Errorf("login success moved by %v, want 1", d)
	}
	if d := delta(mid, after, attempts, "action=login", "outcome=invalid_credentials"); d != 0 {
		t.Errorf("invalid_credentials moved by %v on a good login", d)
	}

	s.login(t, "", "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
	wrong := s.scrape(t)
	if d := delta(after, wrong, attempts, "action=login", "outcome=invalid_credentials"); d != 1 {
		t.Errorf("invalid_credentials moved by %v, want 1", d)
	}
	if d := delta(after, wrong, attempts, "action=login", "outcome=success"); d != 0 {
		t.Errorf("login success moved by %v on a wrong password", d)
	}

	// A reused refresh token, an unknown one, a logout.
	s.mustRefresh(t, *p.RefreshToken)
	s.Clock.Advance(11 * time.Second)
	s.refresh(t, *p.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
	s.refresh(t, "no-such-token").wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
	s.post(t, reg.AccessToken, `mutation { logout }`, nil)
	end := s.scrape(t)
	for _, c := range []struct {
		outcome, action string
		want            float64
	}{
		{"success", "refresh", 1},
		{"reuse_detected", "refresh", 1},
		{"refresh_invalid", "refresh", 1},
		{"success", "logout", 1},
	} {
		if d := delta(wrong, end, attempts, "action="+c.action, "outcome="+c.outcome); d != c.want {
			t.Errorf("%s %s moved by %v, want %v", c.action, c.outcome, d, c.want)
		}
	}

	// What is read from the components at scrape time is there too.
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "go_sql_open_connections",
		"tollgate_db_queries_total", "tollgate_password_hashes_total", "tollgate_password_hash_queue",
		"tollgate_password_hashes_in_flight", "tollgate_revocations", "tollgate_subscriptions"} {
		if end[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}
	if end.value("tollgate_password_hashes_total") < 3 {
		t.Errorf("tollgate_password_hashes_total = %v, want at least 3", end.value("tollgate_password_hashes_total"))
	}

	secrets := []string{"alice", "127.0.0.1", "correct horse", reg.AccessToken, p.AccessToken, *p.RefreshToken}
	for _, v := range end.labelValues() {
		for _, secret := range secrets {
			if strings.Contains(v, secret) {
				t.Errorf("label value %q contains %q", v, secret)
			}
		}
	}
}

// Every verification is counted by outcome, and a request costs one count.
func TestMetrics_CountTokenVerifications(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	p := s.register(t, "alice", "correct horse")
	const name = "tollgate_token_verifications_total"
	for _, c := range []struct {
		outcome, token string
	}{
		{"valid", p.AccessToken},
		{"missing", ""},
		{"invalid", "not-a-jwt"},
	} {
		before := s.scrape(t)
		s.post(t, c.token, `{ protected }`, nil)
		after := s.scrape(t)
		for _, outcome := range []string{"valid", "missing", "invalid", "expired", "revoked"} {
			want := 0.0
			if outcome == c.outcome {
				want = 1
			}
			if d := delta(before, after, name, "outcome="+outcome); d != want {
				t.Errorf("%s request: %s moved by %v, want %v", c.outcome, outcome, d, want)
			}
		}
	}
	s.post(t, p.AccessToken, `mutation { logout }`, nil)
	before := s.scrape(t)
	s.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
	if d := delta(before, s.scrape(t), name, "outcome=revoked"); d != 1 {
		t.Errorf("revoked moved by %v, want 1", d)
	}
	s.Clock.Advance(time.Hour)
	before = s.scrape(t)
	s.wantRefused(t, p.AccessToken, "TOKEN_EXPIRED")
	if d := delta(before, s.scrape(t), name, "outcome=expired"); d != 1 {
		t.Errorf("expired moved by %v, want 1", d)
	}
}

// A logout on instance A reaches instance B through NOTIFY, and B counts
// the notification and observes its lag.
func TestMetrics_RevocationNoticeCountedOnTheOtherInstance(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	a := newTestServer(t, url, nil)
	b := newTestServer(t, url, nil)
	p := a.register(t, "alice", "correct horse")
	const (
		notices = "tollgate_revocation_notices_total"
		lag     = "tollgate_revocation_notice_lag_seconds"
	)
	before := b.scrape(t)
	a.post(t, p.AccessToken, `mutation { logout }`, nil)
	waitRefused(t, b, p.AccessToken, time.Second)
	// The count follows the revocation by an instant: poll briefly.
	var after scrape
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		after = b.scrape(t)
		if delta(before, after, notices, "kind=session") >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if d := delta(before, after, notices, "kind=session"); d != 1 {
		t.Errorf("B's session notices moved by %v, want 1", d)
	}
	if d := delta(before, after, lag); d != 1 {
		t.Errorf("B's lag histogram has %v new samples, want 1", d)
	}
}

// A payload without a time, as an earlier build sends it, still revokes;
// it is counted, but no lag is observed for it.
func TestRevocationNotice_PayloadWithoutTimeStillApplies(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	p := s.register(t, "alice", "correct horse")
	before := s.scrape(t)
	s.App.Auth.HandleNotice("session " + sid(t, p.AccessToken))
	s.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
	after := s.scrape(t)
	if d := delta(before, after, "tollgate_revocation_notices_total", "kind=session"); d != 1 {
		t.Errorf("session notices moved by %v, want 1", d)
	}
	if d := delta(before, after, "tollgate_revocation_notice_lag_seconds"); d != 0 {
		t.Errorf("a payload without a time added %v lag samples", d)
	}
	s.App.Auth.HandleNotice("something else entirely")
	if d := delta(after, s.scrape(t), "tollgate_revocation_notices_total", "kind=unknown"); d != 1 {
		t.Errorf("unknown notices moved by %v, want 1", d)
	}
}

// Operation names are client-chosen: the first 100 valid ones get a label
// of their own, every later one shares "other", anonymous operations are
// "anonymous", and a refused operation never takes up a name (it is
// "unknown" when refused before an operation was chosen: by validation, or
// by the limits that measure a document before it is validated).
func TestMetrics_OperationNamesAreBounded(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	const ops = "tollgate_graphql_operations_total"

	s.post(t, "", `query Invalid { noSuchField }`, nil).wantError(t, "GRAPHQL_VALIDATION_FAILED", "")
	aliases := make([]string, 51) // one more than the limit
	for i := range aliases {
		aliases[i] = fmt.Sprintf("a%d: __typename", i)
	}
	s.post(t, "", `query Refused { `+strings.Join(aliases, " ")+` }`, nil).wantError(t, "GRAPHQL_VALIDATION_FAILED", "ALIASES")
	for i := range 100 {
		s.post(t, "", fmt.Sprintf(`query Op%03d { __typename }`, i), nil)
	}
	s.post(t, "", `query Late { __typename }`, nil)
	s.post(t, "", `{ protected }`, nil)
	m := s.scrape(t)

	for _, c := range []struct {
		operation, outcome string
		want               float64
	}{
		{"Op000", "ok", 1},
		{"Op099", "ok", 1}, // the refused one did not take a name
		{"Late", "ok", 0},
		{"Refused", "validation_failed", 0},
		{"Invalid", "validation_failed", 0},
		{"other", "ok", 1},
		{"other", "validation_failed", 0},
		{"unknown", "validation_failed", 2}, // Invalid and Refused: refused before an operation was chosen
		{"anonymous", "unauthenticated", 1},
	} {
		if got := m.value(ops, "operation="+c.operation, "outcome="+c.outcome); got != c.want {
			t.Errorf("%s{operation=%q,outcome=%q} = %v, want %v", ops, c.operation, c.outcome, got, c.want)
		}
	}
	if got := m.value("tollgate_graphql_operation_duration_seconds", "operation=Op000"); got != 1 {
		t.Errorf("duration samples of Op000 = %v, want 1", got)
	}
	names := map[string]bool{}
	for _, metric := range m[ops].Metric {
		for _, lp := range metric.Label {
			if lp.GetName() == "operation" {
				names[lp.GetValue()] = true
			}
		}
	}
	if len(names) != 103 { // Op000…Op099, other, anonymous, unknown
		t.Errorf("%d operation labels, want 103", len(names))
	}
}
