package graph

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vikstrous/dataloadgen"

	"tollgate/auth"
)

type loadersKey struct{}

// loaders batch the lookups that fields of a list would otherwise make one
// by one (N+1): every Note.owner of one operation is fetched in one query.
// They are built on first use: most operations ({ protected }, login) load
// no user, and building a loader costs a dozen allocations.
type loaders struct {
	svc   *auth.Service
	once  sync.Once
	users *dataloadgen.Loader[string, *auth.User]
}

// userLoader returns the operation's user loader, built the first time.
func (l *loaders) userLoader() *dataloadgen.Loader[string, *auth.User] {
	l.once.Do(func() {
		svc := l.svc
		l.users = dataloadgen.NewLoader(func(ctx context.Context, ids []string) ([]*auth.User, []error) {
			users, err := svc.UsersByIDs(ctx, ids)
			if err != nil {
				return nil, []error{err}
			}
			errs := make([]error, len(ids))
			for i, u := range users {
				if u == nil {
					errs[i] = auth.ErrNotFound
				}
			}
			return users, errs
		}, dataloadgen.WithWait(time.Millisecond))
	})
	return l.users
}

// withLoaders gives each operation its own loaders, so that nothing cached
// outlives the operation or crosses from one caller to another. Those of an
// HTTP request's one operation are part of its exchange; each operation of a
// socket gets its own.
func withLoaders(svc *auth.Service) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		return next(loadersContext(ctx, svc))
	}
}

// loadersContext is ctx with the operation's loaders (withLoaders).
func loadersContext(ctx context.Context, svc *auth.Service) context.Context {
	if ex := exchangeFrom(ctx); ex != nil && !overSocket(ctx) {
		ex.loaders.svc = svc
		return ctx
	}
	return context.WithValue(ctx, loadersKey{}, &loaders{svc: svc})
}

// operationScope gives an operation its loaders (withLoaders) and then its
// answer's budget (responseBudgets, when budgets is not nil) or, to a
// subscription, which has no budget, subscriptionErrors: one operation
// middleware, because gqlgen allocates a closure per operation for each one
// in its chain.
func operationScope(svc *auth.Service, budgets *responseBudgets) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		ctx = loadersContext(ctx, svc)
		if budgets != nil && !isSubscription(ctx) {
			return budgets.InterceptOperation(ctx, next)
		}
		return subscriptionErrors(ctx, next)
	}
}

// isSubscription reports whether the operation of ctx is a subscription.
func isSubscription(ctx context.Context) bool {
	oc := graphql.GetOperationContext(ctx)
	return oc != nil && oc.Operation != nil && oc.Operation.Operation == ast.Subscription
}

// loadUser returns the user id through the operation's loader.
func loadUser(ctx context.Context, svc *auth.Service, id string) (*auth.User, error) {
	if l, ok := ctx.Value(loadersKey{}).(*loaders); ok {
		return l.userLoader().Load(ctx, id)
	}
	if ex := exchangeFrom(ctx); ex != nil && ex.loaders.svc != nil && !overSocket(ctx) {
		return ex.loaders.userLoader().Load(ctx, id)
	}
	return svc.User(ctx, id)
}
