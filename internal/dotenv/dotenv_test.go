package dotenv

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Entry
	}{
		{"empty", "", nil},
		{"blank and comments", "\n  \n# comment\n   # indented comment\n\t\n", nil},
		{"simple", "A=1\nB_2=two\n", []Entry{{"A", "1", 1}, {"B_2", "two", 2}}},
		{"no final newline", "A=1", []Entry{{"A", "1", 1}}},
		{"crlf", "A=1\r\nB=2\r\n", []Entry{{"A", "1", 1}, {"B", "2", 2}}},
		{"crlf cut before the last lf", "A=1\r\nB=2\r", []Entry{{"A", "1", 1}, {"B", "2", 2}}},
		{"bom", "\uFEFFA=1\n", []Entry{{"A", "1", 1}}},
		{"underscore key", "_X=1\n", []Entry{{"_X", "1", 1}}},
		{"export", "export A=1\nexport\tB=2\n", []Entry{{"A", "1", 1}, {"B", "2", 2}}},
		{"key named export", "export=1\nexport export=2\n", []Entry{{"export", "2", 2}}},
		{"spaces around", "  A  =   spaced value   \n", []Entry{{"A", "spaced value", 1}}},
		{"empty value", "A=\nB=   \nC= # comment\n", []Entry{{"A", "", 1}, {"B", "", 2}, {"C", "", 3}}},
		{"inline comment", "A=value # comment\nB=value\t# tab comment\n", []Entry{{"A", "value", 1}, {"B", "value", 2}}},
		{"hash inside unquoted", "A=a#b\nB=#x\n", []Entry{{"A", "a#b", 1}, {"B", "#x", 2}}},
		{"equals in value", "A=b=c==\n", []Entry{{"A", "b=c==", 1}}},
		{"unquoted keeps quotes and backslashes", `A=it's "x" \n` + "\n", []Entry{{"A", `it's "x" \n`, 1}}},
		{"single quoted literal", `A='  $HOME \n "x" # not a comment '` + "\n", []Entry{{"A", `  $HOME \n "x" # not a comment `, 1}}},
		{"double quoted escapes", `A="a\nb\tc\"d\\e"` + "\n", []Entry{{"A", "a\nb\tc\"d\\e", 1}}},
		{"double quoted unknown escape kept", `A="C:\dir\x"` + "\n", []Entry{{"A", `C:\dir\x`, 1}}},
		{"double quoted hash", `A="a # b" # comment` + "\n", []Entry{{"A", "a # b", 1}}},
		{"comment right after quote", `A="a"#c` + "\n", []Entry{{"A", "a", 1}}},
		{"empty quotes", `A=""` + "\nB=''\n", []Entry{{"A", "", 1}, {"B", "", 2}}},
		{"multi-line pem", "KEY=\"-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----\"\nNEXT=1\n",
			[]Entry{{"KEY", "-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----", 1}, {"NEXT", "1", 5}}},
		{"multi-line crlf", "KEY=\"a\r\nb\"\r\n", []Entry{{"KEY", "a\nb", 1}}},
		{"multi-line single", "KEY='a\n# not a comment\nb'\n", []Entry{{"KEY", "a\n# not a comment\nb", 1}}},
		{"duplicate: last wins, first place", "A=1\nB=2\nA=3\n", []Entry{{"A", "3", 3}, {"B", "2", 2}}},
		{"duplicate empty overrides", "A=1\nA=\n", []Entry{{"A", "", 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

// secret is in every bad input below, wherever a value or something that
// could be one is; no error may repeat it.
const secret = "s3cr3tV4lue"

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		line int
		want string // in the message
	}{
		{"no equals", "A=1\n" + secret + "\n", 2, `no "=" in this line: write KEY=VALUE`},
		{"export without equals", "export " + secret + "\n", 1, `no "="`},
		{"empty key", "=" + secret + "\n", 1, `no name before "="`},
		{"key starts with digit", "1" + secret + "=" + secret + "\n", 1, "starts with a digit"},
		{"key with space", "MY " + secret + "=x\n", 1, "contains white space"},
		{"key with dash", secret + "-x=" + secret + "\n", 1, "not a valid variable name"},
		{"base64 line", "\n\n" + secret + "+/x==\n", 3, "not a valid variable name"},
		{"text after double quote", `TOKEN="` + secret + `"` + secret + "\n", 1, `TOKEN: text after the closing "`},
		{"text after single quote", `TOKEN='` + secret + `' ` + secret + "\n", 1, `TOKEN: text after the closing '`},
		{"text after multi-line quote", "TOKEN=\"" + secret + "\n" + secret + "\" x" + secret + "\n", 2, "TOKEN: text after the closing"},
		{"unterminated double", "A=1\nTOKEN=\"" + secret + "\nmore " + secret + "\n", 2, `TOKEN: the double-quoted value that starts on this line is never closed: end it with "`},
		{"unterminated single", "TOKEN='" + secret + "\n", 1, "TOKEN: the single-quoted value that starts on this line is never closed: end it with '"},
		{"escaped quote does not close", `TOKEN="` + secret + `\"` + "\n", 1, "never closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tc.in, got)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v, want a *SyntaxError", err, err)
			}
			if se.Line != tc.line {
				t.Errorf("error on line %d, want %d: %v", se.Line, tc.line, err)
			}
			if !strings.HasPrefix(err.Error(), "line ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			for _, part := range []string{secret, secret[:4], "V4lue"} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("error %q leaks %q from the input", err, part)
				}
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	if _, err := Parse(failingReader{}); err == nil || err.Error() != "disk on fire" {
		t.Fatalf("Parse(failing reader) = %v, want its error", err)
	}
}

func TestValidKey(t *testing.T) {
	for s, want := range map[string]bool{
		"A": true, "_": true, "a_1": true, "ANTHROPIC_API_KEY": true, "_9": true,
		"": false, "1A": false, "A-B": false, "A B": false, "A.B": false, "É": false, "A=": false,
	} {
		if got := ValidKey(s); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	values := []string{"", "plain", "with space", `quo"te`, `back\slash`, `\n literal`, "new\nline", "tab\there",
		"# hash", "trailing space ", "'single'", "=", "\r", "ünïcødé", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"}
	var b strings.Builder
	for i, v := range values {
		b.WriteString(Format("K"+string(rune('A'+i)), v) + "\n")
	}
	got, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("Parse(Format(...)): %v", err)
	}
	if len(got) != len(values) {
		t.Fatalf("got %d entries, want %d", len(got), len(values))
	}
	for i, v := range values {
		if got[i].Value != v || got[i].Line != i+1 {
			t.Errorf("entry %d = %q line %d, want %q line %d", i, got[i].Value, got[i].Line, v, i+1)
		}
	}
}
