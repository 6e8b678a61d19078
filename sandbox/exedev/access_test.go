package exedev_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// TestAccessSSHLine runs the ssh line of a VM's Access (what moat prints
// for a kept VM) with the real OpenSSH client: it reaches the VM, checking
// the VM's host key against the lobby's known_hosts entry; once the key
// changes it refuses.
func TestAccessSSHLine(t *testing.T) {
	testenv.RequireBinary(t, "ssh", "openssh-client")
	srv := exedevtest.NewServer(t)
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	a := h.(sandbox.Reachable).Access()
	for _, want := range []string{"-a -x -o ClearAllForwardings=yes", "StrictHostKeyChecking=yes", "HostKeyAlias="} {
		if !strings.Contains(a.SSH, want) {
			t.Errorf("ssh line %q lacks %q", a.SSH, want)
		}
	}
	sshRun := func() (string, error) {
		cmd := exec.Command("sh", "-c", a.SSH+" -o BatchMode=yes -F /dev/null 'echo reached; pwd'")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "SSH_AUTH_SOCK=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := sshRun(); err != nil || !strings.HasPrefix(out, "reached\n") {
		t.Fatalf("the printed ssh line did not reach the VM: %v\n%s\n(line: %s)", err, out, a.SSH)
	}
	if _, err := srv.ChangeHostKey(); err != nil {
		t.Fatal(err)
	}
	if out, err := sshRun(); err == nil || !strings.Contains(out, "Host key verification failed") {
		t.Fatalf("the printed ssh line reached a VM with a changed host key: %v\n%s", err, out)
	}
	if !strings.Contains(a.Remove, "moat sandbox rm "+h.(*exedev.Handle).VM().Name) {
		t.Errorf("remove line %q", a.Remove)
	}
}
