// Command floor is the baseline of refreshToken in bench/README.md: a plain
// net/http handler that does, on Tollgate's own schema and through the same
// drivers and connection settings (db.Open), only the durable work that a
// rotation cannot avoid, and answers what refreshToken answers.
//
// For each POST /graphql it takes the refresh token from the body's
// variables ("t", as bench/refresh.lua sends it), and in one transaction that
// commits durably (PostgreSQL with its default synchronous_commit, SQLite in
// WAL with synchronous=NORMAL, as Tollgate opens it):
//
//  1. reads the presented token's row by the hash of its text and marks it
//     used, in one statement (UPDATE … RETURNING, which also locks it);
//  2. inserts its successor in the same session.
//
// Then it signs an access token (HS256, as Tollgate) and writes the answer.
// It has no GraphQL, no rate limit, no session check and no reuse detection:
// what Tollgate's refreshToken costs beyond it is the price of those.
//
//	DATABASE_URL=sqlite:data/app.db JWT_SECRET=... ADDR=127.0.0.1:18083 go run ./bench/floor
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jmoiron/sqlx"

	"tollgate/db"
)

const refreshTTL = 30 * 24 * time.Hour

func main() {
	secret := []byte(os.Getenv("JWT_SECRET"))
	if len(secret) < 32 {
		log.Fatal("JWT_SECRET must hold at least 32 bytes")
	}
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:18083"
	}
	maxConns, _ := strconv.Atoi(os.Getenv("DATABASE_MAX_CONNS"))
	dbx, err := db.Open(context.Background(), os.Getenv("DATABASE_URL"), maxConns)
	if err != nil {
		log.Fatal(err)
	}
	// The schema is Tollgate's: migrate as it does (a no-op when Tollgate
	// has already started on this database).
	if err := db.Migrate(context.Background(), dbx); err != nil {
		log.Fatal(err)
	}
	f := &floor{db: dbx, secret: secret}
	http.HandleFunc("POST /graphql", f.serve)
	log.Fatal(http.ListenAndServe(addr, nil))
}

type floor struct {
	db     *sqlx.DB
	secret []byte
}

var errUnknown = errors.New("unknown or used refresh token")

func (f *floor) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Variables struct {
			T string `json:"t"`
		} `json:"variables"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// A client that hangs up does not cancel the rotation: a cancelled
	// query makes database/sql drop its connection (as Tollgate's database
	// deadline, not the client, bounds its queries).
	refresh, sub, sid, err := f.rotate(context.WithoutCancel(r.Context()), body.Variables.T)
	if err != nil {
		if !errors.Is(err, errUnknown) {
			log.Print(err)
		}
		io.WriteString(w, `{"errors":[{"message":"Invalid refresh token.","extensions":{"code":"UNAUTHENTICATED"}}],"data":null}`+"\n")
		return
	}
	now := time.Now()
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "tollgate", "aud": "tollgate", "sub": sub, "sid": sid,
		"iat": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(),
	}).SignedString(f.secret)
	if err != nil {
		http.Error(w, "sign", http.StatusInternalServerError)
		return
	}
	out, _ := json.Marshal(map[string]any{"data": map[string]any{"refreshToken": map[string]string{
		"accessToken": access, "refreshToken": refresh,
	}}})
	w.Write(append(out, '\n'))
}

// rotate marks the token used and inserts its successor, in one
// transaction. It returns the successor, the user and the session.
func (f *floor) rotate(ctx context.Context, token string) (next, userID, sessionID string, err error) {
	now := time.Now().UTC()
	raw := make([]byte, 64)
	rand.Read(raw)
	next = base64.RawURLEncoding.EncodeToString(raw)
	tx, err := f.db.BeginTxx(ctx, nil)
	if err != nil {
		return "", "", "", err
	}
	defer tx.Rollback()
	err = tx.QueryRowxContext(ctx, tx.Rebind(`UPDATE refresh_tokens SET rotated_at = ?
		WHERE token_hash = ? AND rotated_at IS NULL AND expires_at > ?
		RETURNING session_id, (SELECT user_id FROM sessions WHERE sessions.id = refresh_tokens.session_id)`),
		now, hash(token), now).Scan(&sessionID, &userID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", "", errUnknown
	}
	if err != nil {
		return "", "", "", err
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO refresh_tokens
		(token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)`),
		hash(next), sessionID, now, now.Add(refreshTTL)); err != nil {
		return "", "", "", err
	}
	return next, userID, sessionID, tx.Commit()
}

func hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
