package hostview

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestVisible(t *testing.T) {
	tool := t.TempDir()
	path := tool + string(filepath.ListSeparator) + filepath.Join(tool, "missing") + string(filepath.ListSeparator) + "relative/bin:/usr/bin"
	for p, want := range map[string]bool{
		"/usr/bin/git":         true,
		"/etc/passwd":          true,
		"/etc/shadow":          false,
		"/etc/ssh/sshd_config": false,
		"/etc/sshd":            true, // not under /etc/ssh
		"/root/.ssh/id_rsa":    false,
		"/home/user/.aws":      false,
		"/run/user/1000/bus":   false,
		"/var/run/docker.sock": false,
		"/tmp/x":               false,
		tool + "/go":           true,
		tool:                   true,
		tool + "-other":        false,
	} {
		if got := Visible(p, path); got != want {
			t.Errorf("Visible(%q) = %v, want %v", p, got, want)
		}
	}
	if got := Toolchains(path); !slices.Equal(got, []string{tool}) {
		t.Errorf("Toolchains = %q, want only %q (existing, absolute, outside the system directories)", got, tool)
	}
	args := BwrapArgs(path)
	if !slices.Contains(args, tool) || slices.Contains(args, "/root") || slices.Contains(args, "/home") || slices.Contains(args, "/run") {
		t.Errorf("BwrapArgs = %q", args)
	}
}
