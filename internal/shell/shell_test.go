package shell

import (
	"os/exec"
	"strings"
	"testing"
)

// TestQuoteRoundTrip feeds quoted words to the real /bin/sh.
func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"", "plain", "a b", "it's", `"dq"`, "$(x) `y` $HOME", "new\nline", "tab\there", "ünï 世界", `back\slash`, "'", "''", "-n", "*"}
	var script strings.Builder
	for _, w := range words {
		script.WriteString("printf '%s\\0' " + Quote(w) + "\n")
	}
	out, err := exec.Command("/bin/sh", "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("got %d words back, want %d: %q", len(got), len(words), got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("Quote(%q) came back as %q", words[i], got[i])
		}
	}
}

func TestMergeEnv(t *testing.T) {
	env, err := MergeEnv(map[string]string{"A": "1", "B": "1"}, map[string]string{"B": "2", "_c9": "3"})
	if err != nil || env["A"] != "1" || env["B"] != "2" || env["_c9"] != "3" {
		t.Fatalf("MergeEnv = %v, %v", env, err)
	}
	for _, bad := range []string{"", "9A", "A-B", "A B", "A=B"} {
		if _, err := MergeEnv(nil, map[string]string{bad: "v"}); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	_, err = MergeEnv(nil, map[string]string{"TOKEN": "secret-value\x00"})
	if err == nil || strings.Contains(err.Error(), "secret-value") {
		t.Errorf("NUL value: error %v (must fail without showing the value)", err)
	}
}
