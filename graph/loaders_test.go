package graph

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
	"tollgate/db"
	"tollgate/db/dbtest"
)

// The owners of N notes, asked for at once as gqlgen asks for the fields of
// a list, are fetched in one query.
func TestUserLoader_BatchesOwners(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			store := db.NewStore(dbx)
			var ids []string
			for i := range 5 {
				id := fmt.Sprintf("user-%d", i)
				if err := store.CreateUser(ctx, db.User{ID: id, Username: id, PasswordHash: "x", Role: "USER", CreatedAt: time.Now().UTC()}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			key, err := auth.NewHMACKey(auth.NewRandomHMACSecret())
			if err != nil {
				t.Fatal(err)
			}
			tokens, err := auth.NewTokenIssuer(auth.TokenConfig{Issuer: "i", Audience: "a", TTL: time.Minute}, time.Now, key)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := auth.NewService(ctx, auth.Config{}, store, tokens, nil, slog.New(slog.DiscardHandler), time.Now)
			if err != nil {
				t.Fatal(err)
			}

			before := store.Queries()
			withLoaders(svc)(ctx, func(ctx context.Context) graphql.ResponseHandler {
				var wg sync.WaitGroup
				for _, id := range append(ids, ids[0], ids[1]) { // duplicates are asked for once
					wg.Go(func() {
						u, err := loadUser(ctx, svc, id)
						if err != nil || u.ID != id {
							t.Errorf("load %s = %+v, %v", id, u, err)
						}
					})
				}
				wg.Wait()
				return nil
			})
			if used := store.Queries() - before; used != 1 {
				t.Errorf("%d queries for 5 owners, want 1", used)
			}
		})
	}
}
