package dotenv

import (
	"errors"
	"fmt"
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
// give valid keys, line numbers within the file, and survive a
// Format/Parse round trip. CRLF line ends and a leading byte order mark
// change nothing. Seeds are in testdata/fuzz/FuzzParse; run it longer with
// go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m ./internal/dotenv (or
// scripts/fuzz.sh with MOAT_FUZZTIME).
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := Parse(strings.NewReader(in))
		lines := strings.Count(in, "\n") + 1
		var se *SyntaxError
		if err != nil && (!errors.As(err, &se) || se.Line < 1 || se.Line > lines) {
			t.Fatalf("Parse(%q): error %v is not a *SyntaxError on one of its %d lines", in, err, lines)
		}
		for _, e := range entries {
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("Parse(%q): entry %q on line %d of %d", in, e.Key, e.Line, lines)
			}
		}
		if !strings.Contains(in, "\r") {
			crlf, crlfErr := Parse(strings.NewReader(strings.ReplaceAll(in, "\n", "\r\n")))
			if fmt.Sprint(crlf, crlfErr) != fmt.Sprint(entries, err) {
				t.Fatalf("Parse(%q) = %v, %v but with CRLF line ends %v, %v", in, entries, err, crlf, crlfErr)
			}
		}
		if !strings.HasPrefix(in, "\uFEFF") {
			bom, bomErr := Parse(strings.NewReader("\uFEFF" + in))
			if fmt.Sprint(bom, bomErr) != fmt.Sprint(entries, err) {
				t.Fatalf("Parse(%q) = %v, %v but after a byte order mark %v, %v", in, entries, err, bom, bomErr)
			}
		}
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

// FuzzFormat checks Format's promise: for any valid key and any value,
// Parse reads Format(key, value) back as exactly that key and value, on
// one line.
func FuzzFormat(f *testing.F) {
	for _, v := range []string{"", "plain", " padded ", `a"b\c`, "multi\nline\n", "tab\there", "#not a comment", "'single'",
		"$HOME ${X} `id`", "C:\\tmp\\n", "\\n literal", "pem\r\nlines\r\n", "lone\rcr", "\r", "\uFEFFbom", "\xff\xfe invalid", "\x00nul", "ends with backslash\\"} {
		f.Add("KEY", v)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		if !ValidKey(key) {
			return
		}
		line := Format(key, value)
		if strings.Contains(line, "\n") {
			t.Fatalf("Format(%q, %q) = %q spans lines", key, value, line)
		}
		entries, err := Parse(strings.NewReader(line + "\n"))
		if err != nil {
			t.Fatalf("Parse(Format(%q, %q) = %q): %v", key, value, line, err)
		}
		if len(entries) != 1 || entries[0] != (Entry{Key: key, Value: value, Line: 1}) {
			t.Fatalf("Parse(Format(%q, %q) = %q) = %+v", key, value, line, entries)
		}
	})
}
