package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The load balancer of deploy/ answers 404 for /metrics before it proxies
// anything, and checks the instances' /readyz: read from Caddy's own
// adaptation of the Caddyfile (.ci/run installs Caddy before the tests).
func TestDeploy_CaddyBlocksMetricsAndChecksReadiness(t *testing.T) {
	if _, err := exec.LookPath("caddy"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("caddy is not installed; .ci/run installs it")
		}
		t.Skip("caddy is not installed (apt-get install caddy)")
	}
	out, err := exec.Command("caddy", "adapt", "--config", "deploy/Caddyfile", "--adapter", "caddyfile").Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v", err)
	}
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Match []struct {
							Path []string `json:"path"`
						} `json:"match"`
						Handle []struct {
							Handler      string `json:"handler"`
							StatusCode   any    `json:"status_code"`
							HealthChecks struct {
								Active struct {
									URI string `json:"uri"`
								} `json:"active"`
							} `json:"health_checks"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("caddy adapt's output: %v", err)
	}
	if len(cfg.Apps.HTTP.Servers) != 1 {
		t.Fatalf("%d servers, want 1", len(cfg.Apps.HTTP.Servers))
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		blocked, proxied := false, false
		for _, r := range srv.Routes {
			for _, h := range r.Handle {
				switch h.Handler {
				case "static_response":
					for _, m := range r.Match {
						for _, p := range m.Path {
							if p == "/metrics" && !proxied && h.StatusCode == float64(404) {
								blocked = true
							}
						}
					}
				case "reverse_proxy":
					proxied = true
					if got := h.HealthChecks.Active.URI; got != "/readyz" {
						t.Errorf("active health check on %q, want /readyz", got)
					}
				}
			}
		}
		if !blocked || !proxied {
			t.Errorf("routes: /metrics answered 404 before the proxy %v, proxied %v; want both", blocked, proxied)
		}
	}
}

// Every image deploy/ pulls is pinned to an exact version, and every
// Tollgate instance of compose.yaml serves /metrics on a port of its own
// that it does not publish.
func TestDeploy_ComposePinsImagesAndHidesMetrics(t *testing.T) {
	compose, err := os.ReadFile("deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile("deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	exact := regexp.MustCompile(`^[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9]+)?$`)
	images := regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`).FindAllStringSubmatch(string(compose), -1)
	for _, m := range images {
		if m[1] != "tollgate:local" && !exact.MatchString(m[1]) {
			t.Errorf("compose.yaml: image %s is not pinned to an exact version", m[1])
		}
	}
	if len(images) < 3 {
		t.Errorf("compose.yaml: %d images found, want tollgate, postgres and caddy", len(images))
	}
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		// distroless publishes no version tags (a digest is the only pin).
		if !strings.HasPrefix(m[1], "gcr.io/distroless/") && !exact.MatchString(m[1]) {
			t.Errorf("Dockerfile: FROM %s is not pinned to an exact version", m[1])
		}
	}
	// The instances share the x-tollgate block: METRICS_ADDR there, no ports.
	_, anchor, ok := strings.Cut(string(compose), "x-tollgate: &tollgate\n")
	anchor, _, _ = strings.Cut(anchor, "\nservices:")
	if !ok || !regexp.MustCompile(`(?m)^\s+METRICS_ADDR: "?:9090"?$`).MatchString(anchor) {
		t.Errorf("compose.yaml: the x-tollgate block does not set METRICS_ADDR to :9090")
	}
	if regexp.MustCompile(`(?m)^\s+ports:`).MatchString(anchor) {
		t.Errorf("compose.yaml: the instances publish ports; only Caddy should")
	}
	for _, svc := range []string{"tollgate-1", "tollgate-2"} {
		if !strings.Contains(string(compose), "  "+svc+":\n    <<: *tollgate\n") {
			t.Errorf("compose.yaml: %s does not take the x-tollgate block", svc)
		}
	}
}
