package graph

import (
	"encoding/json"
	"strings"
	"testing"
)

// What an answer's strings are counted never falls short of what is written
// for them (json.Marshal's escapes, HTML's included), and is exact for text
// made of the characters that grow most. (Text is valid UTF-8: graph/scalar
// refuses any other.)
func TestJSONStringSize_CoversWhatIsWritten(t *testing.T) {
	for _, s := range []string{
		"", "plain", "é€😀", strings.Repeat("<", 1000), "a&b>c", "\u2028\u2029", "\x00\x01\x1f", `"\`, "\n\t\r",
		strings.Repeat("<\u2028\x01\"", 100), "\u20ac\u2027\u202a",
	} {
		written, _ := json.Marshal(s)
		if got := jsonStringSize(s); got < int64(len(written)) {
			t.Errorf("%q: counted %d, written %d", s, got, len(written))
		}
	}
	for _, s := range []string{strings.Repeat("<", 1000), strings.Repeat("&>", 10), strings.Repeat("\u2028", 50), `a"b\c`} {
		written, _ := json.Marshal(s)
		if got := jsonStringSize(s); got != int64(len(written)) {
			t.Errorf("%.20q: counted %d, written %d", s, got, len(written))
		}
	}
}
