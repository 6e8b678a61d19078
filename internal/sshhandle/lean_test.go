//go:build linux

package sshhandle_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/procstat"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/internal/sshhandle"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// Secrets of the lean-shape test: each holds a newline, quotes and
// non-ASCII, and a marker no other text on the machine holds.
const (
	createSecret = "l3an-create-9c1e\nit's \"quoted\" $(x) ü"
	execSecret   = "l3an-exec-4d7b\n\n'\\' `y` 世界"
)

// TestLeanExecShape runs a command that reports its PID, then waits on its
// stdin while the test looks at the processes of its SSH session (sshd
// makes every session one of its own) on this machine, which is also the
// sandbox. The session must hold one shell, which sshd started, and the
// command: no subshell, no base64 or other helper (not even one that ran
// and ended before the command: the shell has reaped no child), and no
// secret on any command line anywhere on the machine. That holds for the first exec of a
// handle (the login shell execs the wrapper shell), for the next ones
// (where the login shell is /bin/sh, it runs the loader itself), and with
// Sudo (no shell of the login user is left; root's shell runs the command).
func TestLeanExecShape(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	client, err := sshx.New(sshx.Config{
		Host: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
		SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dir := fmt.Sprintf("lean-test-%d", os.Getpid())
	work, err := sshhandle.MakeDir(t.Context(), client, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sshhandle.RemoveDir(context.Background(), client, work)
	loginSh := loginShell(t, srv.User)
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}

	h := sshhandle.New(client, work, map[string]string{"MOAT_LEAN_CREATE": createSecret}, nil)
	defer h.Close(context.Background())
	steps := []struct {
		name  string
		sudo  bool
		argv0 string // of the shell: the wrapper's, or the login shell's
	}{
		{"first exec", false, "/bin/sh"},
		{"next exec", false, map[bool]string{true: "sh", false: "/bin/sh"}[loginSh == "/bin/sh"]},
		{"sudo", true, ""},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.sudo && !srv.CanSudo() {
				t.Skip("the SSH test user cannot sudo")
			}
			stdin, release := io.Pipe()
			pids := make(chan int, 1)
			type result struct {
				r   sandbox.ExecResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := h.Exec(t.Context(), `echo "pid $$"; cat; printf '%s|%s' "$MOAT_LEAN_CREATE" "$MOAT_LEAN_EXEC"`, sandbox.ExecOptions{
					Env:   map[string]string{"MOAT_LEAN_EXEC": execSecret},
					Stdin: stdin,
					Sudo:  step.sudo,
					OnLine: func(l string) {
						if v, ok := strings.CutPrefix(l, "pid "); ok {
							pid, _ := strconv.Atoi(v)
							pids <- pid
						}
					},
				})
				done <- result{r, err}
			}()
			var pid int
			select {
			case pid = <-pids:
			case r := <-done:
				t.Fatalf("the command ended before it reported its PID: %+v %v", r.r, r.err)
			case <-time.After(30 * time.Second):
				t.Fatal("no PID reported")
			}
			// $$ is the session's leader, but for sudo: then root's shell.
			st, err := procstat.Read(pid)
			if err != nil {
				t.Fatal(err)
			}
			if st.Session != pid && !step.sudo {
				t.Errorf("the command's shell %d is not the leader of its session %d", pid, st.Session)
			}
			leader := st.Session
			shell := waitForSession(t, leader)
			secretsOffCommandLines(t)

			var shells []proc
			for _, p := range shell {
				t.Logf("session %d: pid %d ppid %d exe %s argv %q", leader, p.PID, p.PPID, p.exe, p.argv)
				if strings.Contains(p.Comm, "base64") || slices.ContainsFunc(p.argv, func(a string) bool { return strings.Contains(a, "base64") }) {
					t.Errorf("a base64 process: %d %q", p.PID, p.argv)
				}
				if p.exe == sh || isShell(p.exe) {
					shells = append(shells, p)
				}
			}
			if len(shells) != 1 {
				t.Fatalf("%d shells in the session, want one", len(shells))
			}
			cmdShell := shells[0]
			// A subshell or helper that ran and ended before the command
			// (the old wrapper's $(... | base64 -d)) is gone by now, but
			// the shell that reaped it counts its page faults.
			if n := reapedFaults(t, cmdShell.PID); n != 0 {
				t.Errorf("the shell %d reaped children (%d page faults) before the command started: a subshell or a helper ran", cmdShell.PID, n)
			}
			var cats []proc
			for _, p := range shell {
				if len(p.argv) == 1 && p.argv[0] == "cat" {
					cats = append(cats, p)
				}
			}
			if len(cats) != 1 || cats[0].PPID != cmdShell.PID {
				t.Fatalf("want the command (cat) as the one child of the shell %d; have %v", cmdShell.PID, cats)
			}
			if step.sudo {
				// sudo (the session leader, exec'd by the login user's
				// shell) and possibly its monitor, root's shell, cat.
				if l := find(shell, leader); l == nil || filepath.Base(l.exe) != "sudo" {
					t.Errorf("the session leader %d is %v, want sudo", leader, l)
				}
				if cmdShell.PID != pid || cmdShell.PGRP != leader {
					t.Errorf("root's shell %+v: want pid %d in process group %d", cmdShell.Stat, pid, leader)
				}
				for _, p := range shell {
					if p.PID != cmdShell.PID && p.PID != cats[0].PID && filepath.Base(p.exe) != "sudo" {
						t.Errorf("process %d (%s %q) in the session: want only sudo, the shell and the command", p.PID, p.exe, p.argv)
					}
				}
			} else {
				if len(shell) != 2 || cmdShell.PID != pid {
					t.Errorf("%d processes in the session, want 2: the shell %d that reported the PID, and the command", len(shell), pid)
				}
				if cmdShell.exe != sh || cmdShell.argv[0] != step.argv0 {
					t.Errorf("the shell runs %s as %q, want /bin/sh (%s) as %q", cmdShell.exe, cmdShell.argv[0], sh, step.argv0)
				}
				// Its parent is sshd's process for the session.
				parent, err := procstat.Read(cmdShell.PPID)
				if err != nil || !strings.HasPrefix(parent.Comm, "sshd") {
					t.Errorf("the shell's parent %d is %+v (%v), want sshd", cmdShell.PPID, parent, err)
				}
			}
			release.Close()
			r := <-done
			if r.err != nil || r.r.ExitCode != 0 {
				t.Fatalf("exec: %v %+v", r.err, r.r)
			}
			if want := "pid " + strconv.Itoa(pid) + "\n" + createSecret + "|" + execSecret; r.r.Stdout != want {
				t.Errorf("stdout %q, want %q", r.r.Stdout, want)
			}
		})
	}
}

type proc struct {
	procstat.Stat
	exe  string
	argv []string
}

func find(ps []proc, pid int) *proc {
	for i := range ps {
		if ps[i].PID == pid {
			return &ps[i]
		}
	}
	return nil
}

func isShell(exe string) bool {
	switch filepath.Base(exe) {
	case "sh", "dash", "bash", "ash", "ksh", "mksh", "zsh", "busybox":
		return true
	}
	return false
}

// waitForSession returns the live processes of the session sid once cat
// has started in it (a moment after the command printed its PID).
func waitForSession(t *testing.T, sid int) []proc {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all, err := procstat.All()
		if err != nil {
			t.Fatal(err)
		}
		var out []proc
		cat := false
		for _, s := range all {
			if s.Session != sid || !s.Live() {
				continue
			}
			p := proc{Stat: s}
			p.exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", s.PID))
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.PID))
			p.argv = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
			cat = cat || len(p.argv) == 1 && p.argv[0] == "cat"
			out = append(out, p)
		}
		if cat {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("cat never ran in session %d: %+v", sid, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// secretsOffCommandLines fails when any process on the machine has a
// secret, or any line of one, in its argv.
func secretsOffCommandLines(t *testing.T) {
	t.Helper()
	var parts []string
	for _, s := range []string{createSecret, execSecret} {
		for _, l := range strings.Split(s, "\n") {
			if len(l) >= 6 {
				parts = append(parts, l)
			}
		}
	}
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, p := range parts {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("a secret is on a command line: %s: %q", f, bytes.ReplaceAll(b, []byte{0}, []byte(" ")))
			}
		}
		if bytes.Contains(b, []byte("l3an-")) {
			t.Errorf("a secret's marker is on a command line: %s: %q", f, bytes.ReplaceAll(b, []byte{0}, []byte(" ")))
		}
	}
}

// reapedFaults returns the page faults of the children pid has waited for
// (cminflt + cmajflt of /proc/PID/stat).
func reapedFaults(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// After "(comm)": state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt ...
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	cmin, err1 := strconv.Atoi(f[8])
	cmaj, err2 := strconv.Atoi(f[10])
	if err1 != nil || err2 != nil {
		t.Fatalf("stat of %d: %q", pid, b)
	}
	return cmin + cmaj
}

// loginShell is user's shell in /etc/passwd.
func loginShell(t *testing.T, user string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) == 7 && f[0] == user {
			return f[6]
		}
	}
	return ""
}

// TestEvalIsShC: the command runs in the shell that read the script, not
// in a new `sh -c`; what a new shell would set for itself still holds,
// whatever the environment says, and the script's own variables are not
// the command's.
func TestEvalIsShC(t *testing.T) {
	srv := sshdtest.Start(t, sshdtest.Options{})
	client, err := sshx.New(sshx.Config{
		Host: srv.Addr, User: srv.User, IdentityFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile,
		SSHConfigFile: "none", AgentSocket: "none", HomeDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	work, err := sshhandle.MakeDir(t.Context(), client, fmt.Sprintf("shc-test-%d", os.Getpid()), true)
	if err != nil {
		t.Fatal(err)
	}
	defer sshhandle.RemoveDir(context.Background(), client, work)
	h := sshhandle.New(client, work, nil, nil)
	defer h.Close(context.Background())
	env := map[string]string{
		"IFS": ":", "OPTIND": "5", "PPID": "7", "PWD": "/nonexistent",
		"moat_s": "s\nvalue", "MOAT_SANDBOX_ID": "forged",
	}
	cmd := `printf '[%s]' "$IFS" "$OPTIND" "$PWD" "$moat_s" "$#" "$0"; [ "$PPID" != 7 ] && printf ppid-ok
printf '[%s]' "$(env | grep -c '^MOAT_SANDBOX_ID=forged$')"`
	// The mark is the handle's own: an environment cannot forge it.
	want := "[ \t\n][1][" + work + "][s\nvalue][0][sh]ppid-ok[0]"
	for _, sudo := range []bool{false, true} {
		if sudo && !srv.CanSudo() {
			continue
		}
		for range 2 { // the first exec, then the lean one
			r, err := h.Exec(t.Context(), cmd, sandbox.ExecOptions{Env: env, Sudo: sudo})
			if err != nil || r.ExitCode != 0 || r.Stdout != want {
				t.Errorf("sudo=%v: %v %+v; want stdout %q", sudo, err, r, want)
			}
		}
	}
}
