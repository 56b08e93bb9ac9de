package sqlstore

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestDecodeList: the lists decodeList reads without the JSON decoder (plainList) decode as
// the JSON decoder decodes them, and what plainList leaves alone still decodes, or fails, as
// JSON.
func TestDecodeList(t *testing.T) {
	for _, tc := range []struct {
		in    string
		plain bool
	}{
		{`["openid"]`, true},
		{`["openid","email","profile"]`, true},
		{`[""]`, true},
		{`["a",""]`, true},
		{`["]"]`, true},
		{`["é","名前"]`, true},
		{`["a", "b"]`, false},
		{` ["a"]`, false},
		{`["a\"b"]`, false},
		{`["\u003cb\u003e"]`, false},
		{`["a\\","b"]`, false},
		{`["a""b"]`, false},
		{"[\"a\tb\"]", false},
		{"[\"\xff\"]", false},
		{`null`, false},
		{`["a"`, false},
		{`[1]`, false},
	} {
		got, ok := plainList(tc.in)
		if ok != tc.plain {
			t.Errorf("plainList(%s): ok %v, want %v", tc.in, ok, tc.plain)
		}
		var want []string
		jsonErr := json.Unmarshal([]byte(tc.in), &want)
		if ok && (jsonErr != nil || !slices.Equal(got, want)) {
			t.Errorf("plainList(%s) = %q; the JSON decoder: %q, %v", tc.in, got, want, jsonErr)
		}
		dec, err := decodeList(tc.in, "names")
		if (err != nil) != (jsonErr != nil) || err == nil && !slices.Equal(dec, want) {
			t.Errorf("decodeList(%s) = %q, %v; the JSON decoder: %q, %v", tc.in, dec, err, want, jsonErr)
		}
	}
	for _, names := range [][]string{{"openid"}, {"email", "name", "given_name"}, {"a<b", `q"uote`, "back\\slash"}} {
		got, err := decodeList(encodeList(names), "names")
		if err != nil || !slices.Equal(got, names) {
			t.Errorf("decodeList(encodeList(%q)) = %q, %v", names, got, err)
		}
	}
}
