// Package testenv decides what a test does when a tool it needs (sshd, bwrap)
// is missing: skip on a developer's machine, fail in CI, where a silent skip
// would hide a broken gate.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true or CI=1).
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// LookPath returns the path of the named program, also searching the sbin
// directories, where sshd lives but which are often not on a user's PATH.
func LookPath(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// RequireBinary returns the path of the named program. When it is missing the
// test is skipped, or failed when InCI, naming the Debian package to install.
func RequireBinary(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if p, ok := LookPath(name); ok {
		return p
	}
	Unavailable(t, "%s is not installed (Debian package %s; scripts/test.sh installs it)", name, debianPackage)
	return ""
}

// Unavailable skips the test with the formatted reason, or fails it in CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a test requirement is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}
