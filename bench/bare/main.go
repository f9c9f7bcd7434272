// Command bare is the baseline of the benchmark in bench/README.md: a plain
// net/http handler that makes the same access-token checks as Tollgate with
// golang-jwt (HS256 pinned, iss, aud, typ at+jwt, exp required) and writes
// the same JSON for { protected }. It has no GraphQL, no database and no
// middleware: what Tollgate costs beyond it is the price of being a server.
//
//	JWT_SECRET=... ADDR=127.0.0.1:18081 go run ./bench/bare
package main

import (
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	protected    = `{"data":{"protected":"This is a protected endpoint."}}` + "\n"
	unauthorized = `{"errors":[{"message":"Authentication required.","extensions":{"code":"UNAUTHENTICATED"}}],"data":null}` + "\n"
)

func main() {
	secret := []byte(os.Getenv("JWT_SECRET"))
	if len(secret) < 32 {
		log.Fatal("JWT_SECRET must hold at least 32 bytes")
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:18081"
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer("tollgate"),
		jwt.WithAudience("tollgate"),
		jwt.WithLeeway(5*time.Second),
	)
	keyFor := func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") {
			return nil, errors.New("not an access token")
		}
		return secret, nil
	}
	http.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		var claims jwt.RegisteredClaims
		if !strings.EqualFold(scheme, "Bearer") {
			io.WriteString(w, unauthorized)
			return
		}
		if _, err := parser.ParseWithClaims(token, &claims, keyFor); err != nil || claims.Subject == "" {
			io.WriteString(w, unauthorized)
			return
		}
		io.WriteString(w, protected)
	})
	log.Fatal(http.ListenAndServe(addr, nil))
}
