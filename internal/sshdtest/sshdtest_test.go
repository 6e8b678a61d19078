package sshdtest_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/sshdtest"
	"golang.org/x/crypto/ssh"
)

func run(t *testing.T, s *sshdtest.Server, cmd string) string {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatalf("dial: %v\nsshd log: %s", err, s.Logs())
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if err := sess.Run(cmd); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, errb.String())
	}
	return out.String()
}

func TestServer(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	if got := run(t, s, "id -un; echo $HOME"); got != s.User+"\n"+s.HomeDir+"\n" {
		t.Fatalf("got %q, want user %s home %s", got, s.User, s.HomeDir)
	}
	// Nothing but the command's output: no motd, no banner.
	if got := run(t, s, "true"); got != "" {
		t.Fatalf("true printed %q", got)
	}
}

func TestParallelServers(t *testing.T) {
	var wg sync.WaitGroup
	servers := make([]*sshdtest.Server, 4)
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i] = sshdtest.Start(t, sshdtest.Options{})
		}()
	}
	wg.Wait()
	ports := map[int]bool{}
	for _, s := range servers {
		if s == nil {
			t.FailNow()
		}
		ports[s.Port] = true
		if got := strings.TrimSpace(run(t, s, "echo ok")); got != "ok" {
			t.Fatalf("got %q", got)
		}
	}
	if len(ports) != len(servers) {
		t.Fatalf("ports not distinct: %v", ports)
	}
}

func TestKillConnectionsAndRestart(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{})
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Start's banner probe may still have its sshd child until it is reaped.
	n, err := s.Connections()
	for deadline := time.Now().Add(5 * time.Second); (err != nil || n != 1) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n, err = s.Connections()
	}
	if err != nil || n != 1 {
		t.Fatalf("Connections() = %d, %v; want 1", n, err)
	}
	if err := s.KillConnections(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- c.Wait() }()
	select {
	case err := <-waited:
		if err == nil {
			t.Log("connection ended without error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the connection lives on 30s after KillConnections")
	}
	if _, err := c.NewSession(); err == nil {
		t.Fatal("session on a killed connection succeeded")
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := ssh.Dial("tcp", s.Addr, s.ClientConfig()); err == nil {
		t.Fatal("dial succeeded while stopped")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(run(t, s, "echo back")); got != "back" {
		t.Fatalf("got %q", got)
	}
}

func TestMaxSessions(t *testing.T) {
	s := sshdtest.Start(t, sshdtest.Options{MaxSessions: 2})
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		if _, err := c.NewSession(); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	_, err = c.NewSession()
	oce, ok := err.(*ssh.OpenChannelError)
	if !ok || oce.Reason != ssh.ConnectionFailed || oce.Message != "open failed" {
		t.Fatalf("third session: %v (%T), want OpenSSH's refusal: connect failed, open failed", err, err)
	}
	t.Logf("refusal: %v", err)
}

// pgrep reports whether a process whose command line contains pattern runs.
func pgrep(t *testing.T, pattern string) bool {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), pattern) {
			return true
		}
	}
	return false
}

// gone waits up to 5s for every process matching patterns to end (a killed
// process takes a moment to go) and reports whether they all did.
func gone(t *testing.T, patterns ...string) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := false
		for _, p := range patterns {
			alive = alive || pgrep(t, p)
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func requireProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc")
	}
}

// OpenSSH answers the "signal" channel request with killpg on the session's
// process group: the shell and everything it started (background jobs,
// pipelines, nested shells) get the signal. Providers rely on this to stop
// a remote command when its context is cancelled.
func TestSignalReachesProcessGroup(t *testing.T) {
	requireProc(t)
	s := sshdtest.Start(t, sshdtest.Options{})
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	tag := fmt.Sprintf("%d", 7000+time.Now().UnixNano()%1000)
	var out bytes.Buffer
	sess.Stdout = &out
	if err := sess.Start("sleep 9" + tag + "1 & sh -c 'sleep 9" + tag + "2 | cat'; echo after"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !(pgrep(t, "sleep 9"+tag+"1") && pgrep(t, "sleep 9"+tag+"2")) {
		if time.Now().After(deadline) {
			t.Fatal("commands did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := sess.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = sess.Wait()
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("Wait: %v, want exit by signal TERM", err)
	}
	if out.String() != "" {
		t.Fatalf("the shell went on after the signal: %q", out.String())
	}
	if !gone(t, "sleep 9"+tag+"1", "sleep 9"+tag+"2") {
		t.Fatal("a process of the group survived the signal by 5s")
	}
}

// Closing a channel (or the whole connection) does not stop a command that
// has no terminal: it runs on. Close finds and kills such leftovers.
func TestCloseKillsLeftoverCommands(t *testing.T) {
	requireProc(t)
	s := sshdtest.Start(t, sshdtest.Options{})
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("%d", 7000+time.Now().UnixNano()%1000)
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 8" + tag); err != nil {
		t.Fatal(err)
	}
	// It must run before the close, or the final check proves nothing.
	for deadline := time.Now().Add(5 * time.Second); !pgrep(t, "sleep 8"+tag); {
		if time.Now().After(deadline) {
			t.Fatal("command did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sess.Close()
	c.Close()
	time.Sleep(300 * time.Millisecond)
	if !pgrep(t, "sleep 8"+tag) {
		t.Log("sshd now stops commands when their connection closes")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(t, "sleep 8"+tag) {
		t.Fatal("Close left the command running (5s on)")
	}
}
