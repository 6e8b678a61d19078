package moat

import (
	"strings"
	"testing"
)

// FuzzExpandPrompt checks expandPrompt against a plain reading of its
// contract, with one prompt argument (key, value) and the two built-ins
// (SOURCE_BRANCH = branch, TARGET_BRANCH = "main"):
//
//   - an argument named like a built-in is an error naming it, whatever
//     the text;
//   - otherwise a {{KEY}} (white space allowed inside the braces) with no
//     value is an error that names every such key;
//   - otherwise the result is the text with each {{KEY}} replaced by its
//     value, verbatim: text outside the placeholders is unchanged, and a
//     value is never expanded again (a value holding {{KEY}} or $1 stays as
//     it is).
//
// The expected result comes from expectPrompt, a scanner written from the
// contract, not from the regular expression expandPrompt uses. Seeds are in
// testdata/fuzz/FuzzExpandPrompt. Run it longer with
// go test -run '^$' -fuzz '^FuzzExpandPrompt$' -fuzztime 2m . (or
// scripts/fuzz.sh with MOAT_FUZZTIME).
func FuzzExpandPrompt(f *testing.F) {
	f.Add("Fix {{ISSUE}} on {{SOURCE_BRANCH}}", "ISSUE", "{{TARGET_BRANCH}} $1", "moat/x")
	f.Fuzz(func(t *testing.T, text, key, value, branch string) {
		builtins := map[string]string{"SOURCE_BRANCH": branch, "TARGET_BRANCH": "main"}
		args := map[string]string{key: value}
		got, err := expandPrompt(text, args, builtins)
		if _, builtin := builtins[key]; builtin {
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("argument %q overrides a built-in: got %q, %v; want an error naming it", key, got, err)
			}
			return
		}
		values := map[string]string{key: value, "SOURCE_BRANCH": branch, "TARGET_BRANCH": "main"}
		want, missing := expectPrompt(text, values)
		if len(missing) > 0 {
			if err == nil {
				t.Fatalf("expandPrompt(%q) = %q, want an error for the missing %q", text, got, missing)
			}
			for _, k := range missing {
				if !strings.Contains(err.Error(), "{{"+k+"}}") {
					t.Fatalf("expandPrompt(%q): error %q does not name the missing {{%s}}", text, err, k)
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("expandPrompt(%q, %q=%q): %v", text, key, value, err)
		}
		if got != want {
			t.Fatalf("expandPrompt(%q, %q=%q, branch %q)\n got %q\nwant %q", text, key, value, branch, got, want)
		}
	})
}

// expectPrompt expands text by the contract: left to right, a placeholder
// is "{{", optional white space (space, tab, CR, LF, FF), a name (a letter
// or "_", then letters, digits, "_"), optional white space, "}}". Other
// text, values included, is copied as it is. It returns the keys that have
// no value.
func expectPrompt(text string, values map[string]string) (string, []string) {
	var out strings.Builder
	var missing []string
	for i := 0; i < len(text); {
		key, end := placeholderAt(text, i)
		if end < 0 {
			out.WriteByte(text[i])
			i++
			continue
		}
		if v, ok := values[key]; ok {
			out.WriteString(v)
		} else {
			missing = append(missing, key)
		}
		i = end
	}
	return out.String(), missing
}

// placeholderAt returns the key of the placeholder starting at text[i] and
// the index after it, or end -1 when none starts there.
func placeholderAt(text string, i int) (key string, end int) {
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' }
	letter := func(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	if !strings.HasPrefix(text[i:], "{{") {
		return "", -1
	}
	j := i + 2
	for j < len(text) && space(text[j]) {
		j++
	}
	start := j
	for j < len(text) && (letter(text[j]) || j > start && '0' <= text[j] && text[j] <= '9') {
		j++
	}
	if j == start {
		return "", -1
	}
	key = text[start:j]
	for j < len(text) && space(text[j]) {
		j++
	}
	if !strings.HasPrefix(text[j:], "}}") {
		return "", -1
	}
	return key, j + 2
}
