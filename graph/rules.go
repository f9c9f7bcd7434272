package graph

import (
	"bytes"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// validationRules returns gqlparser's rules as this server applies them.
//
// Without introspection, two more things hold:
//
//   - __schema and __type are refused by validation, as
//     GRAPHQL_VALIDATION_FAILED with HTTP 400: left to execution, gqlgen
//     answers them with an internal error that is logged at ERROR for every
//     request, so anyone could flood the log. __typename stays allowed
//     (clients such as Apollo add it to every selection).
//   - no message suggests a name ("Did you mean …?") for an unknown field,
//     argument, enum value or type: suggestions recite the schema piece by
//     piece. gqlgen's SetDisableSuggestion covers only fields and leaf
//     selections; the other three rules are swapped for gqlparser's
//     WithoutSuggestions variants here.
func validationRules(introspection bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		if introspection {
			return r
		}
		for _, swap := range []struct {
			name string
			rule core.Rule
		}{
			{"FieldsOnCorrectType", rules.FieldsOnCorrectTypeRuleWithoutSuggestions},
			{"KnownArgumentNames", rules.KnownArgumentNamesRuleWithoutSuggestions},
			{"KnownTypeNames", rules.KnownTypeNamesRuleWithoutSuggestions},
			{"ScalarLeafs", rules.ScalarLeafsRuleWithoutSuggestions},
			{"ValuesOfCorrectType", rules.ValuesOfCorrectTypeRuleWithoutSuggestions},
		} {
			r.RemoveRule(swap.name)
			r.AddRule(swap.rule.Name, swap.rule.RuleFunc)
		}
		r.AddRule(noIntrospection.Name, noIntrospection.RuleFunc)
		return r
	}
}

// noIntrospection refuses __schema and __type wherever they are selected,
// fragments included.
var noIntrospection = core.Rule{
	Name: "NoIntrospection",
	RuleFunc: func(observers *core.Events, addError core.AddErrFunc) {
		// The walker visits a fragment's fields once per spread as well:
		// one error per place in the text is enough.
		seen := map[ast.Position]bool{}
		observers.OnField(func(_ *core.Walker, field *ast.Field) {
			if field.Name != "__schema" && field.Name != "__type" {
				return
			}
			if field.Position != nil {
				if seen[*field.Position] {
					return
				}
				seen[*field.Position] = true
			}
			addError(core.Message("Introspection is disabled on this server."), core.At(field.Position))
		})
	},
}

// schemaHandler serves the schema as SDL, printed by gqlparser's formatter
// from the schema the server executes (so it cannot drift from it), for
// tools that read a schema file rather than introspect.
func schemaHandler(es graphql.ExecutableSchema) http.Handler {
	var buf bytes.Buffer
	formatter.NewFormatter(&buf).FormatSchema(es.Schema())
	sdl := buf.Bytes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(sdl)
	})
}
