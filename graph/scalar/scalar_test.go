package scalar

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"tollgate/auth"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber() // as gqlgen decodes variables
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func wantInvalid(t *testing.T, name string, err error) {
	t.Helper()
	var e *auth.Error
	if !errors.As(err, &e) || e.Code != auth.CodeBadUserInput || e.Reason != auth.ReasonInvalidInput {
		t.Errorf("%s: %v, want BAD_USER_INPUT/INVALID_INPUT", name, err)
	}
}

// A WebAuthn response passes unchanged; anything else that is not a small,
// shallow object of clean strings is refused before a parser sees it.
func TestUnmarshalJSON_Bounds(t *testing.T) {
	ok := `{"id":"AQID","rawId":"AQID","type":"public-key","clientExtensionResults":{},
		"response":{"clientDataJSON":"eyJ9","authenticatorData":"AAAA","signature":"MEUC","userHandle":null,"transports":["internal"]},"n":1.5}`
	got, err := UnmarshalJSON(decode(t, ok))
	if err != nil {
		t.Fatal(err)
	}
	var back, want any
	json.Unmarshal(got, &back)
	json.Unmarshal([]byte(ok), &want)
	if b1, _ := json.Marshal(back); string(b1) != string(must(json.Marshal(want))) {
		t.Errorf("changed: %s", got)
	}

	nested := strings.Repeat(`{"a":`, MaxJSONDepth) + `1` + strings.Repeat(`}`, MaxJSONDepth)
	if _, err := UnmarshalJSON(decode(t, nested)); err != nil {
		t.Errorf("%d levels refused: %v", MaxJSONDepth, err)
	}
	at := `{"a":"` + strings.Repeat("x", MaxJSONBytes-len(`{"a":""}`)) + `"}`
	if _, err := UnmarshalJSON(decode(t, at)); err != nil {
		t.Errorf("exactly %d bytes refused: %v", MaxJSONBytes, err)
	}
	for name, v := range map[string]string{
		"a string":          `"{}"`,
		"an array":          `[{}]`,
		"a number":          `1`,
		"null":              `null`,
		"one too deep":      strings.Repeat(`{"a":`, MaxJSONDepth+1) + `1` + strings.Repeat(`}`, MaxJSONDepth+1),
		"one byte over":     `{"a":"` + strings.Repeat("x", MaxJSONBytes-len(`{"a":""}`)+1) + `"}`,
		"many small values": `{"a":[` + strings.Repeat(`0,`, MaxJSONBytes) + `0]}`,
		"NUL in a value":    `{"a":"x\u0000y"}`,
		"NUL in a key":      `{"x\u0000y":1}`,
	} {
		_, err := UnmarshalJSON(decode(t, v))
		wantInvalid(t, name, err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
