package docs

import (
	"strings"
	"testing"
)

const testSchema = `
directive @auth(requires: Role = USER, fresh: Boolean = false, aal: AAL) on FIELD_DEFINITION | OBJECT
enum Role { USER ADMIN }
enum AAL { AAL1 AAL2 }
"A secret <kept> | here."
type Secret @auth(requires: ADMIN) { value: String! }
type Query {
  "Public."
  hello(name: String = "x"): String!
  me: String! @auth(aal: AAL1)
  secret: Secret @auth(requires: ADMIN, fresh: true, aal: AAL2)
}
type Mutation @auth { touch: Boolean! }
`

func TestRenderSchema_RequirementsFromFieldTypeAndDefaults(t *testing.T) {
	out, err := RenderSchema("test.graphqls", []byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `hello` | `name: String = \"x\"` | `String!` | public | — | — | Public. |",
		"| `me` | — | `String!` | `USER` | no | `AAL1`: a password alone suffices | — |",
		"| `secret` | — | `Secret` | `ADMIN` | **yes** | `AAL2`, always | — |",
		// The root type's @auth guards its fields, with the directive's defaults.
		"| `touch` | — | `Boolean!` | `USER` | no | AAL2 if the user has a verified factor, else AAL1 | — |",
		"**`Secret`** (every field guarded by `@auth(requires: ADMIN)`): A secret &lt;kept&gt; | here.",
		"| `requires` | `Role` | `USER` |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the section lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderSchema_EscapesCellsOutsideCode(t *testing.T) {
	if got, want := cell("a <b> | `<c> | d`"), "a &lt;b&gt; \\| `<c> \\| d`"; got != want {
		t.Errorf("cell = %q, want %q", got, want)
	}
}

func TestSplice_NeedsExactlyOnePairOfMarkers(t *testing.T) {
	for _, page := range []string{
		"no markers",
		EndMarker + "\n" + BeginMarker,
		BeginMarker + BeginMarker + EndMarker,
		BeginMarker + EndMarker + EndMarker,
	} {
		if _, err := Splice(page, "x\n"); err == nil {
			t.Errorf("Splice(%q) succeeded", page)
		}
	}
	got, err := Splice("a\n"+BeginMarker+"\nold\n"+EndMarker+"\nb\n", "new\n")
	if want := "a\n" + BeginMarker + "\nnew\n" + EndMarker + "\nb\n"; err != nil || got != want {
		t.Errorf("Splice = %q, %v; want %q", got, err, want)
	}
}
