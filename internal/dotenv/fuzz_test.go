package dotenv

import (
	"strings"
	"testing"
)

// plain are the bytes that play no part in the syntax: everything but
// white space, quotes, backslash, "#" and "=".
var plain = func() []byte {
	var p []byte
	for c := 0; c < 256; c++ {
		if c > ' ' && c != '"' && c != '\'' && c != '\\' && c != '#' && c != '=' && c != 0x7f {
			p = append(p, byte(c))
		}
	}
	return p
}()

// substitute replaces every plain byte after the first "=" of each line by
// another plain byte (a fixed rotation). Text before the first "=" (where
// the key is) is kept, and so is every byte the parser looks at: the
// result has the same structure, with different values.
func substitute(s string) string {
	var next [256]byte
	for i, c := range plain {
		next[c] = plain[(i+7)%len(plain)]
	}
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			continue
		}
		b := []byte(line)
		for j := eq + 1; j < len(b); j++ {
			if n := next[b[j]]; n != 0 {
				b[j] = n
			}
		}
		lines[i] = string(b)
	}
	return strings.Join(lines, "\n")
}

// FuzzParse checks that Parse never panics and that its errors never depend
// on, and so never contain, what a file holds after an "=": the error for
// an input is the same after every such byte is changed. Successful parses
// give valid keys and survive a Format/Parse round trip.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := Parse(strings.NewReader(in))
		other := substitute(in)
		otherEntries, otherErr := Parse(strings.NewReader(other))
		switch {
		case (err == nil) != (otherErr == nil):
			t.Fatalf("Parse(%q) = %v but Parse(%q) = %v: the outcome depends on a value", in, err, other, otherErr)
		case err != nil:
			if err.Error() != otherErr.Error() {
				t.Fatalf("changing values changes the error: %q became %q (inputs %q and %q)", err, otherErr, in, other)
			}
			return
		}
		if len(entries) != len(otherEntries) {
			t.Fatalf("changing values changes the entries: %+v and %+v", entries, otherEntries)
		}
		seen := map[string]bool{}
		var b strings.Builder
		for i, e := range entries {
			if !ValidKey(e.Key) || seen[e.Key] {
				t.Fatalf("entry %q: invalid or duplicate key", e.Key)
			}
			seen[e.Key] = true
			if o := otherEntries[i]; o.Key != e.Key || o.Line != e.Line {
				t.Fatalf("changing values changes the entries: %+v and %+v", entries, otherEntries)
			}
			b.WriteString(Format(e.Key, e.Value) + "\n")
		}
		again, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("Parse(Format(entries of %q)): %v", in, err)
		}
		if len(again) != len(entries) {
			t.Fatalf("round trip of %q: got %+v, want %+v", in, again, entries)
		}
		for i, e := range entries {
			if again[i].Key != e.Key || again[i].Value != e.Value || again[i].Line != i+1 {
				t.Fatalf("round trip of %q: got %+v, want %+v", in, again, entries)
			}
		}
	})
}
