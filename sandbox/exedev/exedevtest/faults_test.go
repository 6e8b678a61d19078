//go:build linux

package exedevtest

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// moatWrapped sends script the way moat's exec wrapper does: base64 on the
// first line of stdin.
func moatWrapped(c *ssh.Client, script string) result {
	const wrapper = `exec /bin/sh -c 'IFS= read -r s && eval "$(printf %s "$s" | base64 -d)"'`
	return run(c, wrapper, []byte(base64.StdEncoding.EncodeToString([]byte(script))+"\n"))
}

func TestDropExecMatchesDecodedScript(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithoutSandbox(), WithDropExec(1, func(script string) bool {
		return strings.Contains(script, "format-patch")
	}))
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=dropexec-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	if r := moatWrapped(c, "echo sync in"); r.err != nil || r.stdout != "sync in\n" {
		t.Fatalf("a script that does not match: %+v", r)
	}
	if r := run(c, "echo plain", nil); r.err != nil || r.stdout != "plain\n" {
		t.Fatalf("a plain command: %+v", r)
	}
	r := moatWrapped(c, "echo git format-patch; touch ran")
	var ee *ssh.ExitError
	if r.err == nil || errors.As(r.err, &ee) || r.stdout != "" {
		t.Fatalf("the matching exec was not dropped before it ran: %+v", r)
	}
	// Only the first match is dropped.
	c2 := mustDial(t, s, a.addr(), "exedev")
	if r := moatWrapped(c2, "echo format-patch again; ls ran 2>&1"); r.err != nil || !strings.Contains(r.stdout, "No such file") {
		t.Fatalf("second match: %+v (the dropped script must not have run)", r)
	}
}

func TestConnectionsAndRequestsAreRecorded(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithoutSandbox())
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=record-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.RequestAgentForwarding(sess); err == nil {
		t.Error("the emulator granted agent forwarding")
	}
	sess.Close()
	if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		t.Fatal(err)
	}
	got := s.Requests()
	if got["auth-agent-req@openssh.com"] != 1 || got["keepalive@openssh.com"] != 1 || got["channel:session"] < 2 || got["exec"] < 1 {
		t.Errorf("requests: %v", got)
	}
	conns := s.Connections()
	if len(conns) != 2 || conns[0].VM != "" || conns[1].VM != "record-vm" || conns[1].Time.Before(conns[0].Time) {
		t.Errorf("connections: %+v", conns)
	}
}

func TestChangeHostKeyAndDropConnections(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithoutSandbox())
	old := s.HostKey()
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=rekey-vm")
	c := mustDial(t, s, a.addr(), "exedev")
	if _, err := s.ChangeHostKey(); err != nil {
		t.Fatal(err)
	}
	if string(s.HostKey().Marshal()) == string(old.Marshal()) {
		t.Fatal("the host key did not change")
	}
	// The open connection lives on; a new handshake shows the new key.
	if r := run(c, "echo still", nil); r.err != nil || r.stdout != "still\n" {
		t.Fatalf("open connection after the change: %+v", r)
	}
	cfg := &ssh.ClientConfig{User: "exedev", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer(t, s))},
		HostKeyCallback: ssh.FixedHostKey(old), Timeout: 5 * time.Second}
	if _, err := ssh.Dial("tcp", a.addr(), cfg); err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("dial with the old key pinned: %v", err)
	}
	if n := s.DropConnections("rekey-vm"); n < 1 {
		t.Errorf("DropConnections closed %d connections, want at least 1", n)
	}
	if r := run(c, "echo gone", nil); r.err == nil {
		t.Errorf("exec on a dropped connection: %+v", r)
	}
}

func TestLoseExitStatus(t *testing.T) {
	t.Parallel()
	s := NewServer(t, WithoutSandbox(), WithLoseExitStatus(2, func(script string) bool {
		return strings.Contains(script, "update-ref")
	}))
	lobby := mustDial(t, s, s.LobbyAddr(), "moat")
	a := newVM(t, lobby, "--name=losestatus-vm")
	for i := range 3 {
		c := mustDial(t, s, a.addr(), "exedev")
		r := moatWrapped(c, "echo update-ref; echo x >> ran")
		var ee *ssh.ExitError
		lost := r.err != nil && !errors.As(r.err, &ee)
		if lost != (i < 2) || r.stdout != "update-ref\n" {
			t.Fatalf("exec %d: %+v (want the answer lost only for the first 2)", i+1, r)
		}
	}
	c := mustDial(t, s, a.addr(), "exedev")
	if r := run(c, "wc -l < ran", nil); r.err != nil || strings.TrimSpace(r.stdout) != "3" {
		t.Fatalf("the command ran %q times, want 3 (a lost answer still runs it)", r.stdout)
	}
}
