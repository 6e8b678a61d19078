// Package shell builds POSIX shell text safely: quoting, and checks on the
// environment variable names moat passes to commands.
package shell

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Quote returns s as one single-quoted POSIX shell word. Any byte but NUL
// survives the trip through sh unchanged.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ValidName reports whether k can be an environment variable name in sh.
func ValidName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// MergeEnv returns base overlaid with over, after checking every key and
// value. The error names the bad key but never shows a value, which may be a
// secret.
func MergeEnv(base, over map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	for _, k := range slices.Sorted(maps.Keys(out)) {
		if !ValidName(k) {
			return nil, fmt.Errorf("invalid environment variable name %q: use letters, digits and underscores, not starting with a digit", k)
		}
		if strings.ContainsRune(out[k], 0) {
			return nil, fmt.Errorf("environment variable %s: value contains a NUL byte, which no process environment can hold", k)
		}
	}
	return out, nil
}

// Exports returns "export K='v'\n" lines for env, sorted by key.
func Exports(env map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(&b, "export %s=%s\n", k, Quote(env[k]))
	}
	return b.String()
}
