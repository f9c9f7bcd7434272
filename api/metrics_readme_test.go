package api_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

// readmeMetricRows returns the rows of the README's metrics table, keyed by
// each metric name of their first cell (a name ending in * is a prefix).
func readmeMetricRows(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Metrics\n")
	if !ok {
		t.Fatal(`README.md has no "## Metrics" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("`([a-z_]+\\*?)`")
	rows := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.Contains(cells[1], "`") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			rows[m[1]] = line
		}
	}
	if len(rows) == 0 {
		t.Fatal("README.md's metrics table has no rows")
	}
	return rows
}

// Every family /metrics serves has a row in the README's metrics table,
// and every fixed label value it carries is named in that row; every
// tollgate_ name of the table is served. Label values that are operation
// names come from clients and are not listed.
func TestMetrics_EveryFamilyIsInTheREADME(t *testing.T) {
	// A provider (unreachable: its discovery only retries), so that the
	// per-provider family has its series.
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"OIDC_PROVIDERS": "acme",
		"OIDC_ACME_ISSUER": "http://127.0.0.1:1", "OIDC_ACME_CLIENT_ID": "x", "OIDC_REDIRECT_URIS": "http://app.test/done"})
	// One operation, so that the per-operation families have a series.
	s.post(t, "", `query Probe { __typename }`, nil)
	families := s.scrape(t)
	rows := readmeMetricRows(t)

	for name, f := range families {
		row, listed := rows[name]
		if !listed {
			for pattern, r := range rows {
				if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(name, prefix) {
					row, listed = r, true
					break
				}
			}
		}
		if !listed {
			t.Errorf("%s is served but has no row in README.md's metrics table", name)
			continue
		}
		if !strings.HasPrefix(name, "tollgate_") {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "operation" || l.GetName() == "provider" {
					continue // from clients, or from OIDC_PROVIDERS
				}
				if !strings.Contains(row, "`"+l.GetValue()+"`") {
					t.Errorf("%s{%s=%q} is served but README.md's row does not name `%s`", name, l.GetName(), l.GetValue(), l.GetValue())
				}
			}
		}
	}
	var stale []string
	for name := range rows {
		if strings.HasPrefix(name, "tollgate_") && families[name] == nil {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		t.Errorf("README.md's metrics table lists %s, which /metrics does not serve", name)
	}
}
