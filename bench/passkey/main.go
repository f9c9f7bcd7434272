// Command passkey measures loginWithPasskey against password login on a
// running Tollgate: it registers users, gives each a passkey (a software
// authenticator: P-256 keys from crypto/ecdsa, CBOR from fxamacker/cbor, as
// the tests' one), then drives each kind of sign-in from concurrent clients
// for a while and prints one name=value line per figure. Every answer is
// checked: a sign-in that does not return an access token is an error.
// bench/passkey.sh runs it on both databases; see bench/README.md.
//
// A passkey sign-in is two requests, passkeyLoginOptions then
// loginWithPasskey; latency is measured for loginWithPasskey alone (the
// verification), throughput for whole sign-ins. Signing the assertion on the
// client is outside the measured time.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func main() {
	var (
		target   = flag.String("url", "http://127.0.0.1:18080/graphql", "the server's /graphql")
		origin   = flag.String("origin", "", "the WebAuthn origin (default http://localhost:<port of -url>)")
		users    = flag.Int("users", 16, "users with a passkey each")
		conns    = flag.Int("connections", 16, "concurrent clients")
		duration = flag.Duration("duration", 8*time.Second, "how long each kind of sign-in is driven")
		password = flag.String("password", "correct horse battery", "every user's password")
	)
	flag.Parse()
	if *origin == "" {
		u, err := url.Parse(*target)
		if err != nil {
			fail(err)
		}
		*origin = "http://localhost:" + u.Port()
	}
	c := &client{url: *target, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conns}}}
	prefix := fmt.Sprintf("bench%d", time.Now().UnixNano()%1_000_000)
	keys := make([]*key, *users)
	names := make([]string, *users)
	for i := range keys {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		token, err := c.signUp(names[i], *password)
		if err != nil {
			fail(err)
		}
		if keys[i], err = c.registerPasskey(token, *origin); err != nil {
			fail(err)
		}
	}
	var next atomic.Int64
	passkey := drive(*conns, *duration, func() (time.Duration, error) {
		k := keys[next.Add(1)%int64(len(keys))]
		return c.passkeySignIn(k, *origin)
	})
	pw := drive(*conns, *duration, func() (time.Duration, error) {
		return c.passwordSignIn(names[next.Add(1)%int64(len(names))], *password)
	})
	passkey.print("passkey")
	pw.print("password")
	if pw.rate > 0 {
		fmt.Printf("ratio_throughput=%.1f\n", passkey.rate/pw.rate)
	}
	if passkey.p99 > 0 {
		fmt.Printf("ratio_p99=%.1f\n", float64(pw.p99)/float64(passkey.p99))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "passkey bench:", err)
	os.Exit(1)
}

type result struct {
	n, errors     int
	rate          float64
	p50, p99, max time.Duration
}

func (r result) print(name string) {
	fmt.Printf("%s_signins=%d\n%s_errors=%d\n%s_per_second=%.1f\n%s_p50_ms=%.2f\n%s_p99_ms=%.2f\n%s_max_ms=%.2f\n",
		name, r.n, name, r.errors, name, r.rate, name, ms(r.p50), name, ms(r.p99), name, ms(r.max))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// drive runs op from conns clients for d and collects what it timed.
func drive(conns int, d time.Duration, op func() (time.Duration, error)) result {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		wg        sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				l, err := op()
				mu.Lock()
				if err != nil {
					if errs == 0 {
						fmt.Fprintln(os.Stderr, "first error:", err)
					}
					errs++
				} else {
					latencies = append(latencies, l)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(latencies)
	r := result{n: len(latencies), errors: errs, rate: float64(len(latencies)) / elapsed.Seconds()}
	if len(latencies) > 0 {
		r.p50 = latencies[len(latencies)/2]
		r.p99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
		r.max = latencies[len(latencies)-1]
	}
	return r
}

type client struct {
	url  string
	http *http.Client
}

// call runs one operation and decodes data.field into out.
func (c *client) call(token, query string, vars map[string]any, field string, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var r struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []json.RawMessage          `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("HTTP %d: %.200s", res.StatusCode, raw)
	}
	if len(r.Errors) > 0 || r.Data[field] == nil {
		return fmt.Errorf("%s: %.300s", field, raw)
	}
	return json.Unmarshal(r.Data[field], out)
}

type tokens struct {
	AccessToken string `json:"accessToken"`
	AAL         string `json:"aal"`
}

func (c *client) signUp(name, password string) (string, error) {
	var t tokens
	err := c.call("", `mutation($u: String!, $p: String!) { register(username: $u, password: $p) { accessToken aal } }`,
		map[string]any{"u": name, "p": password}, "register", &t)
	return t.AccessToken, err
}

func (c *client) passwordSignIn(name, password string) (time.Duration, error) {
	var t tokens
	start := time.Now()
	err := c.call("", `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken aal } }`,
		map[string]any{"u": name, "p": password}, "login", &t)
	if err == nil && t.AccessToken == "" {
		err = errors.New("login: no access token")
	}
	return time.Since(start), err
}

func (c *client) passkeySignIn(k *key, origin string) (time.Duration, error) {
	var options json.RawMessage
	if err := c.call("", `mutation { passkeyLoginOptions }`, nil, "passkeyLoginOptions", &options); err != nil {
		return 0, err
	}
	var o struct{ Challenge string }
	if err := json.Unmarshal(options, &o); err != nil {
		return 0, err
	}
	response, err := k.assert(o.Challenge, origin)
	if err != nil {
		return 0, err
	}
	var t tokens
	start := time.Now()
	err = c.call("", `mutation($r: JSON!) { loginWithPasskey(response: $r) { accessToken aal } }`, map[string]any{"r": response}, "loginWithPasskey", &t)
	if err == nil && t.AAL != "AAL2" {
		err = fmt.Errorf("loginWithPasskey: aal %q", t.AAL)
	}
	return time.Since(start), err
}

// key is a passkey of the software authenticator.
type key struct {
	id, handle []byte
	rpID       string
	priv       *ecdsa.PrivateKey
}

var b64 = base64.RawURLEncoding

const flags = 0x01 | 0x04 // user present, user verified

func (c *client) registerPasskey(token, origin string) (*key, error) {
	var options json.RawMessage
	if err := c.call(token, `{ passkeyRegistrationOptions }`, nil, "passkeyRegistrationOptions", &options); err != nil {
		return nil, err
	}
	var o struct {
		Challenge string
		RP        struct{ ID string }
		User      struct{ ID string }
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	handle, err := b64.DecodeString(o.User.ID)
	if err != nil {
		return nil, err
	}
	k := &key{id: make([]byte, 32), handle: handle, rpID: o.RP.ID, priv: priv}
	rand.Read(k.id)
	pub, err := priv.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := pub.Bytes()
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
	if err != nil {
		return nil, err
	}
	rp := sha256.Sum256([]byte(k.rpID))
	authData := append(rp[:], flags|0x40)
	authData = binary.BigEndian.AppendUint32(authData, 0)
	authData = append(authData, make([]byte, 16)...)
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(k.id)))
	authData = append(append(authData, k.id...), cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return nil, err
	}
	cdj, _ := json.Marshal(map[string]any{"type": "webauthn.create", "challenge": o.Challenge, "origin": origin})
	response := map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response":               map[string]any{"clientDataJSON": b64.EncodeToString(cdj), "attestationObject": b64.EncodeToString(att), "transports": []string{"internal"}}}
	var f struct{ ID string }
	if err := c.call(token, `mutation($r: JSON!) { registerPasskey(response: $r) { id } }`, map[string]any{"r": response}, "registerPasskey", &f); err != nil {
		return nil, err
	}
	return k, nil
}

// assert signs challenge. A key that counts would need its assertions to
// arrive in order; the bench's keys do not count (0, as synced passkeys),
// so that concurrent sign-ins with one key are all valid.
func (k *key) assert(challenge, origin string) (map[string]any, error) {
	rp := sha256.Sum256([]byte(k.rpID))
	authData := append(rp[:], flags)
	authData = binary.BigEndian.AppendUint32(authData, 0)
	cdj, _ := json.Marshal(map[string]any{"type": "webauthn.get", "challenge": challenge, "origin": origin})
	cdh := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(append([]byte{}, authData...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cdj), "authenticatorData": b64.EncodeToString(authData),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.handle)}}, nil
}
