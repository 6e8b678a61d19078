// Package dotenv parses .env files: the KEY=VALUE credentials files that
// moat reads from .moat/.env.
//
// The syntax:
//
//	# a comment line; blank lines are skipped
//	KEY=value                 # unquoted: trimmed, ends at " #" (an inline comment)
//	export KEY=value          # an optional "export " prefix is ignored
//	KEY = value               # white space around the key and "=" is ignored
//	KEY='literal $value \n'   # single quotes: taken as written
//	KEY="a\tb\n"              # double quotes: \n \t \" \\ are escapes
//	KEY="-----BEGIN KEY-----
//	...
//	-----END KEY-----"        # quoted values may span lines
//	KEY=                      # an empty value
//
// A key is a letter or "_" followed by letters, digits and "_". After a
// closing quote only white space and a comment may follow. In double
// quotes a backslash before any other character is kept as written
// ("C:\tmp" is a tab, "C:\dir" stays C:\dir). Nothing is expanded:
// "$HOME" is five characters.
//
// When a key appears twice the last value wins, and Parse returns a single
// Entry for it, at the place of its first appearance, with the Line of its
// last.
//
// Errors name the line, what is wrong and what to write instead. They never
// contain a value, nor any text of a line that could be part of one (such as
// a malformed key): .env files hold secrets and errors end up in logs.
package dotenv

import (
	"fmt"
	"io"
	"strings"
)

// Entry is one KEY=VALUE of a file.
type Entry struct {
	Key   string
	Value string
	Line  int // the line the key is on, from 1
}

// SyntaxError is a malformed line. Msg never contains a value.
type SyntaxError struct {
	Line int    // from 1
	Msg  string // what is wrong and what to write instead
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ValidKey reports whether s is a valid variable name:
// [A-Za-z_][A-Za-z0-9_]*.
func ValidKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Format returns KEY="VALUE" with the value double-quoted and escaped so
// that Parse reads back exactly key and value.
func Format(key, value string) string {
	var b strings.Builder
	b.WriteString(key)
	b.WriteString(`="`)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Parse reads a .env file and returns its entries in file order. An error
// reading r is returned as it is; a malformed file gives a *SyntaxError.
func Parse(r io.Reader) ([]Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	src := strings.TrimPrefix(string(data), "\uFEFF")
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.TrimSuffix(src, "\r") // a CRLF file cut before its last LF
	p := parser{lines: strings.Split(src, "\n")}
	return p.parse()
}

type parser struct {
	lines []string
	i     int // index of the next line
}

func (p *parser) parse() ([]Entry, error) {
	var entries []Entry
	index := map[string]int{}
	for p.i < len(p.lines) {
		lineNo := p.i + 1
		s := strings.TrimLeft(p.lines[p.i], " \t")
		p.i++
		if s == "" || s[0] == '#' {
			continue
		}
		if after, ok := strings.CutPrefix(s, "export"); ok && after != "" && (after[0] == ' ' || after[0] == '\t') {
			s = strings.TrimLeft(after, " \t")
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, &SyntaxError{lineNo, `no "=" in this line: write KEY=VALUE, or start the line with # to make it a comment`}
		}
		key := strings.TrimRight(s[:eq], " \t")
		if err := checkKey(key); err != "" {
			return nil, &SyntaxError{lineNo, err}
		}
		value, err := p.value(key, lineNo, s[eq+1:])
		if err != nil {
			return nil, err
		}
		if j, dup := index[key]; dup {
			entries[j].Value, entries[j].Line = value, lineNo
			continue
		}
		index[key] = len(entries)
		entries = append(entries, Entry{Key: key, Value: value, Line: lineNo})
	}
	return entries, nil
}

// checkKey says what is wrong with a key, without repeating it: a line
// that is not KEY=VALUE may be a pasted secret.
func checkKey(key string) string {
	const want = "a name is letters, digits and _, not starting with a digit, such as API_KEY"
	switch {
	case ValidKey(key):
		return ""
	case key == "":
		return `no name before "=": write KEY=VALUE`
	case '0' <= key[0] && key[0] <= '9':
		return `the name before "=" starts with a digit: ` + want
	case strings.ContainsAny(key, " \t"):
		return `the name before "=" contains white space: ` + want + ` (and "export" is the only word allowed before it)`
	}
	return `the name before "=" is not a valid variable name: ` + want
}

// value parses what follows "=" (rest), reading further lines for a quoted
// value that spans lines.
func (p *parser) value(key string, lineNo int, rest string) (string, error) {
	v := strings.TrimLeft(rest, " \t")
	if v == "" {
		return "", nil
	}
	if q := v[0]; q == '"' || q == '\'' {
		return p.quoted(key, lineNo, q, v[1:])
	}
	// Unquoted: an inline comment starts at a "#" after white space.
	for i := 1; i < len(rest); i++ {
		if rest[i] == '#' && (rest[i-1] == ' ' || rest[i-1] == '\t') {
			rest = rest[:i]
			break
		}
	}
	return strings.Trim(rest, " \t"), nil
}

func (p *parser) quoted(key string, lineNo int, q byte, s string) (string, error) {
	var b strings.Builder
	for {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == q {
				tail := strings.TrimLeft(s[i+1:], " \t")
				if tail != "" && tail[0] != '#' {
					return "", &SyntaxError{p.i, fmt.Sprintf(`%s: text after the closing %c: put only a comment after it (" # ..."), or quote the whole value`, key, q)}
				}
				return b.String(), nil
			}
			if c == '\\' && q == '"' && i+1 < len(s) {
				switch s[i+1] {
				case 'n':
					b.WriteByte('\n')
					i++
					continue
				case 't':
					b.WriteByte('\t')
					i++
					continue
				case '"', '\\':
					b.WriteByte(s[i+1])
					i++
					continue
				}
			}
			b.WriteByte(c)
		}
		if p.i >= len(p.lines) {
			return "", &SyntaxError{lineNo, fmt.Sprintf(`%s: the %s value that starts on this line is never closed: end it with %c (a value may span lines, but must be closed)`, key, quoteName(q), q)}
		}
		b.WriteByte('\n')
		s = p.lines[p.i]
		p.i++
	}
}

func quoteName(q byte) string {
	if q == '"' {
		return "double-quoted"
	}
	return "single-quoted"
}
