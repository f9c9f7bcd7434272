package graph

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// A large answer is written as json.Marshal would write it, byte for byte.
func TestWriteLargeResponse_AsJSONMarshal(t *testing.T) {
	// Every character json.Marshal escapes in a RawMessage, and some it does not.
	data := bytes.Repeat([]byte("{\"a\":\"<b>&\u2028x\u2029 \u2027\u202a é € 😀 \\\" \\\\ \"},"), 3000)
	data = append(append([]byte(`{"l":[`), data...), []byte(`{}]}`)...)
	for _, resp := range []*graphql.Response{
		{Data: data},
		{Data: data, Errors: gqlerror.List{{Message: "m <x>", Extensions: map[string]any{"code": "X"}}}},
		{Data: data, Extensions: map[string]any{"k": "v&"}},
	} {
		want, _ := json.Marshal(resp)
		var got bytes.Buffer
		writeLargeResponse(&got, resp)
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("got %.200s\nwant %.200s", got.Bytes(), want)
		}
	}
}
