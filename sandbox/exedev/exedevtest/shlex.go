package exedevtest

import (
	"errors"
	"strings"
)

var errUnclosedQuote = errors.New("EOF found when expecting closing quote")
var errTrailingEscape = errors.New("EOF found after escape character")

// splitWords splits a command line the way a POSIX shell splits words,
// without any expansion: single quotes keep everything literally, double
// quotes honour backslash before \ " $ ` and newline, a bare backslash
// quotes the next character (and a backslash-newline disappears). Operators
// such as ; | & are ordinary characters, so "a;b" and ";" are words.
func splitWords(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\\':
			if i+1 >= len(rs) {
				return nil, errTrailingEscape
			}
			i++
			if rs[i] == '\n' {
				continue // line continuation
			}
			cur.WriteRune(rs[i])
			inWord = true
		case r == '\'':
			inWord = true
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				j++
			}
			if j >= len(rs) {
				return nil, errUnclosedQuote
			}
			cur.WriteString(string(rs[i+1 : j]))
			i = j
		case r == '"':
			inWord = true
			j := i + 1
			for ; ; j++ {
				if j >= len(rs) {
					return nil, errUnclosedQuote
				}
				c := rs[j]
				if c == '"' {
					break
				}
				if c == '\\' && j+1 < len(rs) {
					switch n := rs[j+1]; n {
					case '\\', '"', '$', '`':
						cur.WriteRune(n)
						j++
						continue
					case '\n':
						j++
						continue
					}
				}
				cur.WriteRune(c)
			}
			i = j
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@+,%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
