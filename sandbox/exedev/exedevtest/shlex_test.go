package exedevtest

import (
	"reflect"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "  ls   --json ", want: []string{"ls", "--json"}},
		{in: `new --name 'a b' "c d"`, want: []string{"new", "--name", "a b", "c d"}},
		{in: `a'b'"c"d`, want: []string{"abcd"}},
		{in: `"x\"y\\z\$w\n"`, want: []string{`x"y\z$w\n`}},
		{in: `'it''s' '\n'`, want: []string{"its", `\n`}},
		{in: `a\ b \' \"`, want: []string{"a b", "'", `"`}},
		{in: `echo a;b ; c|d && e`, want: []string{"echo", "a;b", ";", "c|d", "&&", "e"}},
		{in: `$HOME $(id) *`, want: []string{"$HOME", "$(id)", "*"}},
		{in: `"" ''`, want: []string{"", ""}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: `"unclosed`, err: true},
		{in: `'unclosed`, err: true},
		{in: `trailing\`, err: true},
	} {
		got, err := splitWords(tc.in)
		if (err != nil) != tc.err || !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"abcde": true, "a-vm-name": true, "vm2go": true, "abc-1x": true,
		"abcd": false, "Abcde": false, "1abcd": false, "ab--cd": false, "abcd-": false,
		"test-123": false, "a_bcd": false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v", name, got)
		}
	}
	for range 50 {
		if n := randomName(func(string) bool { return true }); !validName(n) {
			t.Errorf("random name %q is invalid", n)
		}
	}
}
