package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "",
		"plain\ttab":                        "plain\ttab",
		"\x1b[31mred\x1b[0m":                "^[[31mred^[[0m",
		"\x1b]52;c;cHduZWQ=\a":              "^[]52;c;cHduZWQ=^G",
		"\x1b]0;title\x1b\\":                `^[]0;title^[\`,
		"\x1b[2J\x1b[H":                     "^[[2J^[[H",
		"cr\rbell\a del\x7f bs\b nul\x00":   "cr^Mbell^G del^? bs^H nul^@",
		"two\nlines":                        "two^Jlines",
		"csi\u009b2J é ✓":                   `csi\x9b2J é ✓`,
		"8-bit csi \x9b2J":                  `8-bit csi \x9b2J`,
		"bad \xff\xfe utf8, real \uFFFD ok": `bad \xff\xfe utf8, real ` + "\uFFFD ok",
		"rlo \u202eevil\u202c lri \u2066x\u2069 lrm\u200e alm\u061c": `rlo \u202eevil\u202c lri \u2066x\u2069 lrm\u200e alm\u061c`,
		"cut short \xe2\x9c": `cut short \xe2\x9c`,
		"long plain text that is more than eight bytes, then \x1b at the end": "long plain text that is more than eight bytes, then ^[ at the end",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
		if got := string(Append([]byte("x"), in)); got != "x"+want {
			t.Errorf("Append(x, %q) = %q, want %q", in, got, "x"+want)
		}
	}
}

func TestAppendLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "| \n"},
		{"one", "| one\n"},
		{"one\ntwo", "| one\n| two\n"},
		{"one\n", "| one\n| \n"},
		{"a\x1b[2J\nb\rc\n\n", "| a^[[2J\n| b^Mc\n| \n| \n"},
		{"fake\n── summary (1s) ──\n1 commit(s) landed on main:", "| fake\n| ── summary (1s) ──\n| 1 commit(s) landed on main:\n"},
	} {
		if got := string(AppendLines([]byte("| "), tc.in, "| ")); got != tc.want {
			t.Errorf("AppendLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Lines("a\nb\x1b", "  "); got != "a\n  b^[" {
		t.Errorf("Lines = %q", got)
	}
	if got := Lines("plain", "  "); got != "plain" {
		t.Errorf("Lines = %q", got)
	}
}

// TestPlainPrefix holds the 8-bytes-at-a-time plainPrefix to the plain
// loop, for every byte value at every place of a word.
func TestPlainPrefix(t *testing.T) {
	naive := func(s string) int {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' || c >= 0x7f {
				return i
			}
		}
		return len(s)
	}
	for c := range 256 {
		for at := range 19 {
			b := []byte(strings.Repeat("abcdefgh", 3)[:19])
			b[at] = byte(c)
			for _, s := range []string{string(b), string(b[1:]), string(b[:at+1])} {
				if got, want := plainPrefix(s), naive(s); got != want {
					t.Fatalf("plainPrefix(%q) = %d, want %d", s, got, want)
				}
			}
		}
	}
}

// FuzzString: whatever comes in, what goes out is valid UTF-8 with no
// control character but tab, no bidirectional control, and (for
// AppendLines) one line per line of the input, each starting with the
// continuation.
func FuzzString(f *testing.F) {
	for _, s := range []string{"plain", "\x1b]52;c;eA==\a", "a\nb\r\n", "\xff\x9b\u202e", "é✓\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		checkSafe(t, s, out)
		lines := string(AppendLines(nil, s, "| "))
		if !strings.HasSuffix(lines, "\n") {
			t.Fatalf("AppendLines(%q) = %q: no final line break", s, lines)
		}
		parts := strings.Split(strings.TrimSuffix(lines, "\n"), "\n")
		if want := strings.Count(s, "\n") + 1; len(parts) != want {
			t.Fatalf("AppendLines(%q) = %q: %d lines, want %d", s, lines, len(parts), want)
		}
		for i, p := range parts {
			if i > 0 && !strings.HasPrefix(p, "| ") {
				t.Fatalf("AppendLines(%q): line %d lacks the continuation: %q", s, i+1, p)
			}
			checkSafe(t, s, p)
		}
	})
}

func checkSafe(t *testing.T, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("String(%q) = %q: not UTF-8", in, out)
	}
	for _, r := range out {
		if r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 || bidi(r) {
			t.Fatalf("String(%q) = %q: holds %U", in, out, r)
		}
	}
}

func BenchmarkString(b *testing.B) {
	for _, tc := range []struct{ name, s string }{
		{"short", "y"},
		{"100-byte", strings.Repeat("0", 99)},
		{"escapes", strings.Repeat("\x1b[31mred\x1b[0m é ", 6)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var buf []byte
			b.SetBytes(int64(len(tc.s)))
			for b.Loop() {
				buf = AppendLines(buf[:0], tc.s, "| ")
			}
		})
	}
}
