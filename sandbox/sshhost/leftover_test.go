package sshhost_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/procmark"
	"github.com/moatdev/moat/internal/sshdtest"
	"github.com/moatdev/moat/sandbox"
)

// TestLeftovers: a sandbox abandoned without Close (its maker killed) is
// listed with its record and its processes, a daemon that left its
// process group included; OpenLeftover runs commands in it with its mark
// and leaves it; RemoveLeftover kills every marked process and removes
// the directory and the record.
func TestLeftovers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts processes through /proc")
	}
	srv := sshdtest.Start(t, sshdtest.Options{})
	p := newProvider(t, srv)
	h, err := p.Create(t.Context(), sandbox.CreateOptions{Labels: map[string]string{sandbox.LabelRepo: "/r", sandbox.LabelRun: "run-1"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Exec(t.Context(), `echo work > f; setsid sh -c 'touch up; exec sleep 300' </dev/null >/dev/null 2>&1 & while [ ! -e up ]; do sleep 0.01; done`, sandbox.ExecOptions{})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("exec: %v %+v", err, r)
	}
	ls, err := p.Leftovers(t.Context())
	if err != nil || len(ls) != 1 {
		t.Fatalf("Leftovers: %v %+v", err, ls)
	}
	if ls[0].Processes != -1 {
		t.Errorf("Leftovers counted processes: %+v", ls[0])
	}
	p.CountProcesses(t.Context(), ls)
	l := ls[0]
	if !l.InUse || l.Kind != "sshhost" || l.Repo() != "/r" || l.Labels[sandbox.LabelRun] != "run-1" || l.Processes != 1 || l.WorkDir != h.WorkDir() {
		t.Errorf("leftover of a live sandbox: %+v (workdir %s)", l, h.WorkDir())
	}

	// The maker is gone: its record names a process that has exited.
	dead := exec.Command("true")
	dead.Run()
	rec := l.Record
	rec.Owner.PID, rec.Owner.Start = dead.ProcessState.Pid(), 0
	rec.WorkDir = ""
	if err := os.WriteFile(filepath.Join(srv.HomeDir, sandboxBase(t), "."+l.Name+".json"), rec.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	ls, _ = p.Leftovers(t.Context())
	if len(ls) != 1 || ls[0].InUse {
		t.Fatalf("a sandbox whose maker is gone: %+v", ls)
	}
	o, err := p.OpenLeftover(t.Context(), ls[0])
	if err != nil {
		t.Fatal(err)
	}
	if r, err := o.Exec(t.Context(), `cat f; printf '%s' "$`+sandbox.MarkerVar+`"`, sandbox.ExecOptions{}); err != nil || r.Stdout != "work\n"+l.Name {
		t.Errorf("the reopened sandbox: %v %+v", err, r)
	}
	o.Close(t.Context())
	if _, err := os.Stat(filepath.Join(h.WorkDir(), "f")); err != nil {
		t.Fatalf("closing the reopened handle removed the sandbox: %v", err)
	}

	bad := ls[0]
	bad.WorkDir = "/etc"
	if err := p.RemoveLeftover(t.Context(), bad); err == nil {
		t.Error("RemoveLeftover took a directory that is not the sandbox's")
	}
	if err := p.RemoveLeftover(t.Context(), ls[0]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(procmark.Find(procmark.Env(sandbox.MarkerVar, l.Name))) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the daemon still runs after RemoveLeftover")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := leftovers(t, srv); len(left) > 0 {
		t.Errorf("left on the host: %v", left)
	}
	h.Close(context.Background())
}
