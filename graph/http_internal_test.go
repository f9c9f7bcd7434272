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

// Any answer is written as json.Marshal would write it, byte for byte: the
// usual one, data alone, without json.Marshal, and the others through it.
func TestWriteResponse_AsJSONMarshal(t *testing.T) {
	for _, data := range []string{
		`{"protected":"ok"}`,
		`{"a":"<b>&` + "\u2028x\u2029" + ` \" \\ é","b":[1,2.5,null,true,{}]}`,
		`{"a": 1}`, // not compact: json.Marshal compacts it
		`{"a":"\"","b" :2}`,
		"{\"a\":\"x\"}\n",
		``, // no data at all: null
		`null`,
	} {
		raw := json.RawMessage(data)
		if data == "" {
			raw = nil
		}
		for _, resp := range []*graphql.Response{
			{Data: raw},
			{Data: raw, Errors: gqlerror.List{{Message: "m"}}},
			{Data: raw, Extensions: map[string]any{"k": "v"}},
		} {
			want, _ := json.Marshal(resp)
			var got bytes.Buffer
			writeResponse(&got, resp)
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("got %s, want %s", got.Bytes(), want)
			}
		}
	}
}
