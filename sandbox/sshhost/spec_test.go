package sshhost_test

import (
	"strings"
	"testing"

	"github.com/moatdev/moat/sandbox/sshhost"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in, user, hostPort, err string
	}{
		{"ssh://h", "", "h", ""},
		{"ssh://me@h.example.com:2222", "me", "h.example.com:2222", ""},
		{"ssh://a@b@h", "a@b", "h", ""},
		{"ssh://[::1]:22", "", "[::1]:22", ""},
		{"ssh://[::1]", "", "[::1]", ""},
		{"ssh://", "", "", "no host"},
		{"ssh://me@", "", "", "no host"},
		{"ssh://@h", "", "", "empty user"},
		{"ssh://h:", "", "", "port"},
		{"ssh://h:0", "", "", "port"},
		{"ssh://h:70000", "", "", "port"},
		{"ssh://h/path", "", "", "without a path"},
		{"h", "", "", "want ssh://"},
	} {
		user, hp, err := sshhost.ParseSpec(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSpec(%q) = %q, %q, %v; want an error containing %q", tc.in, user, hp, err, tc.err)
			}
			continue
		}
		if err != nil || user != tc.user || hp != tc.hostPort {
			t.Errorf("ParseSpec(%q) = %q, %q, %v; want %q, %q", tc.in, user, hp, err, tc.user, tc.hostPort)
		}
	}
}
