// Package safetext makes text that moat did not write safe to show a
// person: what an agent prints on stdout and stderr, commit subjects,
// file names, errors that quote a sandbox. Such text reaches a terminal
// directly, through a pipe (less -R, tee, a CI log viewer) or in a log
// file someone cats, and on none of them may it act on the terminal.
//
// Made safe, text shows every character it has, and nothing in it is
// sent to a terminal as a control:
//
//   - C0 controls but tab, in caret notation: ESC as ^[, CR as ^M, BEL
//     as ^G, LF as ^J (AppendLines starts a new line there instead);
//   - DEL as ^?;
//   - C1 controls (U+0080–U+009F) and bytes that are not UTF-8 as \x
//     and two hex digits: \x9b;
//   - the Unicode bidirectional controls (U+061C, U+200E, U+200F,
//     U+202A–U+202E, U+2066–U+2069), which reorder how a line is shown,
//     as \u and four hex digits: \u202e.
//
// So no escape sequence (OSC 52 clipboard writes, title changes, screen
// clears, cursor moves) reaches a terminal, a carriage return cannot
// overwrite the start of a line, and a line of the text stays one line
// of the output. Everything else, tab and printable Unicode included, is
// kept as it is. Caret notation is ambiguous with text that spells "^["
// itself; that is the price of output a person can read.
//
// Most text is printable ASCII, which is looked at 8 bytes at a time and
// copied as it is: an agent printing a million lines a second goes
// through here.
package safetext

import "unicode/utf8"

// String returns s made safe. It returns s itself when nothing needs
// escaping.
func String(s string) string {
	if plainPrefix(s) == len(s) {
		return s
	}
	return string(Append(make([]byte, 0, len(s)+16), s))
}

// Append appends s made safe to b; a line break in s is escaped (^J), so
// s adds exactly one line's worth of text.
func Append(b []byte, s string) []byte {
	for {
		i := plainPrefix(s)
		b = append(b, s[:i]...)
		if s = s[i:]; s == "" {
			return b
		}
		var n int
		b, n = appendOne(b, s)
		s = s[n:]
	}
}

// AppendLines appends s made safe to b as lines: each line break of s
// ends a line and the next one starts with cont, and a line break ends
// what is appended. A caller writing "| " and then AppendLines(b, s, "| ")
// has every line of s start with "| ", whatever s holds.
func AppendLines(b []byte, s, cont string) []byte {
	for {
		i := plainPrefix(s)
		b = append(b, s[:i]...)
		if s = s[i:]; s == "" {
			return append(b, '\n')
		}
		if s[0] == '\n' {
			b = append(b, '\n')
			b = append(b, cont...)
			s = s[1:]
			continue
		}
		var n int
		b, n = appendOne(b, s)
		s = s[n:]
	}
}

// Lines returns AppendLines(nil, s, cont) as a string, without the final
// line break.
func Lines(s, cont string) string {
	if plainPrefix(s) == len(s) {
		return s
	}
	b := AppendLines(make([]byte, 0, len(s)+16), s, cont)
	return string(b[:len(b)-1])
}

const hexDigits = "0123456789abcdef"

// appendOne appends the first character of s, which plainPrefix stopped
// at, made safe, and returns how many bytes of s it took.
func appendOne(b []byte, s string) ([]byte, int) {
	c := s[0]
	switch {
	case c < 0x20 && c != '\t':
		return append(b, '^', c+'@'), 1
	case c == 0x7f:
		return append(b, '^', '?'), 1
	case c < utf8.RuneSelf:
		return append(b, c), 1 // tab
	}
	r, n := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && n == 1: // not UTF-8
		return append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15]), 1
	case r < 0xa0: // a C1 control, shown as its code point
		return append(b, '\\', 'x', hexDigits[r>>4], hexDigits[r&15]), n
	case bidi(r):
		return append(b, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15]), n
	}
	return append(b, s[:n]...), n
}

// bidi reports whether r is one of the Unicode bidirectional formatting
// characters: marks, embeddings, overrides and isolates.
func bidi(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// Masks for looking at 8 bytes at a time: one in every byte, and every
// byte's high bit.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainPrefix returns how many bytes at the start of s are printable
// ASCII (0x20–0x7e) or tab: what is copied as it is. It looks at 8 bytes
// at a time.
func plainPrefix(s string) int {
	i := 0
	for i < len(s) {
		if i+8 <= len(s) {
			w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			// No byte >= 0x80, none < 0x20 (+0x60 leaves its high bit
			// clear), none 0x7f (+1 sets it): all 8 are plain.
			if w&highs == 0 && (^(w+0x60*ones)|(w+ones))&highs == 0 {
				i += 8
				continue
			}
		}
		if c := s[i]; c < 0x20 && c != '\t' || c >= 0x7f {
			return i
		}
		i++
	}
	return i
}
