package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/go-viper/mapstructure/v2"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Automatic persisted queries (Apollo's protocol, as gqlgen's
// extension.AutomaticPersistedQuery speaks it): a client may send a query's
// SHA-256 instead of its text once the server has seen it.
//
// gqlgen's extension stores a query as soon as it arrives, before anything
// checks it, so refused megabyte queries would fill the cache. Here the
// lookup runs first (persistedQueryLookup) and the query is remembered last
// (persistedQueryStore), once the operation has passed every limit; queries
// over maxPersistedQueryBytes are never remembered, so the cache holds at
// most its size times that many bytes.
const maxPersistedQueryBytes = 16 << 10

// The error Apollo clients expect for a hash the server does not know: they
// answer it by sending the query with its hash.
const (
	errPersistedQueryNotFound     = "PersistedQueryNotFound"
	errPersistedQueryNotFoundCode = "PERSISTED_QUERY_NOT_FOUND"
)

type persistedQuery struct {
	Sha256  string `mapstructure:"sha256Hash"`
	Version int64  `mapstructure:"version"`
}

// persistedKey holds, in the operation context's stats, the hash of a query
// that arrived with its text and may be remembered.
const persistedKey = "TollgatePersistedQuery"

// persistedQueryLookup fills in the query of a hash-only request and checks
// the hash of a request that sends both.
type persistedQueryLookup struct {
	cache graphql.Cache[string]
}

var (
	_ graphql.OperationParameterMutator = persistedQueryLookup{}
	_ graphql.OperationContextMutator   = persistedQueryStore{}
)

func (persistedQueryLookup) ExtensionName() string                   { return "PersistedQueryLookup" }
func (persistedQueryLookup) Validate(graphql.ExecutableSchema) error { return nil }

func (l persistedQueryLookup) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	raw := p.Extensions["persistedQuery"]
	if raw == nil {
		return nil
	}
	var ext persistedQuery
	if err := mapstructure.Decode(raw, &ext); err != nil {
		return badPersistedQuery("The persistedQuery extension is not valid.")
	}
	if ext.Version != 1 {
		return badPersistedQuery("Only version 1 of persisted queries is supported.")
	}
	if p.Query == "" {
		q, ok := l.cache.Get(ctx, ext.Sha256)
		if !ok {
			err := gqlerror.Errorf(errPersistedQueryNotFound)
			errcode.Set(err, errPersistedQueryNotFoundCode)
			return err
		}
		p.Query = q
		return nil
	}
	sum := sha256.Sum256([]byte(p.Query))
	if hex.EncodeToString(sum[:]) != ext.Sha256 {
		return badPersistedQuery("The persisted query's hash does not match the query.")
	}
	if len(p.Query) <= maxPersistedQueryBytes {
		graphql.GetOperationContext(ctx).Stats.SetExtension(persistedKey, ext.Sha256)
	}
	return nil
}

func badPersistedQuery(message string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", message)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// persistedQueryStore remembers the query of a hash that arrived with its
// text. It is registered after every other check, so it runs only for an
// operation that passed them all.
type persistedQueryStore struct {
	cache graphql.Cache[string]
}

func (persistedQueryStore) ExtensionName() string                   { return "PersistedQueryStore" }
func (persistedQueryStore) Validate(graphql.ExecutableSchema) error { return nil }

func (s persistedQueryStore) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if hash, ok := oc.Stats.GetExtension(persistedKey).(string); ok {
		s.cache.Add(ctx, hash, oc.RawQuery)
	}
	return nil
}
