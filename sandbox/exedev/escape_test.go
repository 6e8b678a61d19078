//go:build linux

package exedev_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moatdev/moat/internal/procstat"
	"github.com/moatdev/moat/internal/testenv"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// TestEmulatorContainsVMs tries, from inside an emulator VM through the
// provider's Exec (as an agent's commands run), the escapes a hostile
// agent found when VMs shared the host's PID namespace and root: each
// must fail.
func TestEmulatorContainsVMs(t *testing.T) {
	srv := exedevtest.NewServer(t)
	if !srv.Sandboxed() {
		if exec.Command("bwrap", "--ro-bind", "/", "/", "true").Run() == nil {
			t.Fatalf("bwrap works here but the emulator does not contain its VMs: %v", srv.Containment())
		}
		testenv.Unavailable(t, "the emulator cannot contain VMs here: %v", srv.Containment())
	}
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	inside := func(t *testing.T, script string, env map[string]string) sandbox.ExecResult {
		t.Helper()
		r, err := h.Exec(t.Context(), script, sandbox.ExecOptions{Env: env})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		return r
	}
	testPID := strconv.Itoa(os.Getpid())

	t.Run("write through /proc/PID/root", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "written-from-the-vm")
		r := inside(t, `for d in /proc/$TEST_PID /proc/1 /proc/[0-9]*; do
			echo pwned 2>/dev/null >"$d/root$TARGET" && echo "wrote through $d"
		done; true`, map[string]string{"TEST_PID": testPID, "TARGET": target})
		if _, err := os.Stat(target); err == nil || strings.Contains(r.Stdout, "wrote") {
			t.Errorf("the VM wrote %s on the host: %q", target, r.Stdout)
		}
	})
	t.Run("read another process's environ", func(t *testing.T) {
		// /proc/PID/environ shows what a process was started with: the
		// canary is in a host process's initial environment, as a token
		// is in moat's.
		host := exec.Command("sleep", "1000")
		host.Env = append(os.Environ(), "MOAT_ESCAPE_CANARY="+canary(t))
		if err := host.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { host.Process.Kill(); host.Wait() }()
		r := inside(t, `cat /proc/$HOST_PID/environ /proc/$TEST_PID/environ /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep '^MOAT_ESCAPE_CANARY='; true`,
			map[string]string{"HOST_PID": strconv.Itoa(host.Process.Pid), "TEST_PID": testPID})
		if strings.Contains(r.Stdout, "MOAT_ESCAPE_CANARY") {
			t.Errorf("the VM read a host process's environment: %q", r.Stdout)
		}
	})
	t.Run("signal a host process", func(t *testing.T) {
		sleep := exec.Command("sleep", "1000")
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { sleep.Process.Kill(); sleep.Wait() }()
		pid := strconv.Itoa(sleep.Process.Pid)
		r := inside(t, `kill -9 $SLEEP_PID 2>&1; kill -9 -- -$SLEEP_PID 2>&1; true`, map[string]string{"SLEEP_PID": pid})
		if st, err := procstat.Read(sleep.Process.Pid); err != nil || !st.Live() {
			t.Errorf("the VM killed host process %s: %v %+v; output %q", pid, err, st, r.Stdout)
		}
	})
	t.Run("read the host's files", func(t *testing.T) {
		secret := canary(t)
		tmpCanary := filepath.Join(t.TempDir(), "canary")
		if err := os.WriteFile(tmpCanary, []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"TMP_CANARY": tmpCanary}
		home, err := os.UserHomeDir()
		if err == nil {
			homeCanary := filepath.Join(home, ".moat-escape-canary-"+secret[:8])
			if os.WriteFile(homeCanary, []byte(secret), 0o600) == nil {
				defer os.Remove(homeCanary)
				env["HOME_CANARY"] = homeCanary
			} else {
				t.Logf("no canary in the user's home %s (not writable)", home)
			}
		}
		r := inside(t, `cat "$TMP_CANARY" ${HOME_CANARY:+"$HOME_CANARY"} 2>/dev/null; true`, env)
		if strings.Contains(r.Stdout, secret) || r.Stdout != "" {
			t.Errorf("the VM read a canary file of the host: %q", r.Stdout)
		}
		if r := inside(t, `ls -A /home; ls -d /run /var/run /var 2>/dev/null; true`, nil); r.Stdout != "exedev\n" {
			t.Errorf("the VM sees the host's /home, /run or /var: %q", r.Stdout)
		}
		// The user's home holds only what leads to the toolchains on PATH
		// (bound read-only, as the local sandbox does).
		if home != "" {
			r := inside(t, `ls -A "$H" 2>/dev/null; true`, map[string]string{"H": home})
			for _, e := range strings.Fields(r.Stdout) {
				if !strings.Contains(string(os.PathListSeparator)+os.Getenv("PATH")+string(os.PathListSeparator), string(os.PathListSeparator)+filepath.Join(home, e)) {
					t.Errorf("the VM sees %s in the user's home, which leads to no directory on PATH", e)
				}
			}
		}
	})
	t.Run("see host processes", func(t *testing.T) {
		mark := "1000." + strconv.Itoa(os.Getpid())
		sleep := exec.Command("sleep", mark)
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { sleep.Process.Kill(); sleep.Wait() }()
		r := inside(t, `ps -e -o pid=,args=; for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' <"$f"; echo; done`, nil)
		test := filepath.Base(os.Args[0])
		for _, line := range strings.Split(r.Stdout, "\n") {
			if strings.Contains(line, mark) || strings.Contains(line, test) {
				t.Errorf("the VM sees a host process: %q", line)
			}
		}
		if !strings.Contains(r.Stdout, "ps -e") {
			t.Errorf("ps did not list itself: %q %q", r.Stdout, r.Stderr)
		}
	})
}

// canary is a random word.
func canary(t *testing.T) string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestEmulatorVMsHaveNoCapabilities: VM commands run without
// capabilities, so they cannot remount what they see read-only and write
// the host's system directories or the toolchains on PATH.
func TestEmulatorVMsHaveNoCapabilities(t *testing.T) {
	toolchain := t.TempDir() // a directory on PATH outside the system ones
	t.Setenv("PATH", toolchain+string(os.PathListSeparator)+os.Getenv("PATH"))
	srv := exedevtest.NewServer(t)
	if !srv.Sandboxed() {
		testenv.Unavailable(t, "the emulator cannot contain VMs here: %v", srv.Containment())
	}
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(t.Context())
	{
		r, err := h.Exec(t.Context(), `grep '^CapEff' /proc/self/status
			for d in /usr /etc "$TOOLCHAIN"; do
				mount -o remount,bind,rw "$d" 2>/dev/null && echo "remounted $d"
				touch "$d/.moat-escape" 2>/dev/null && echo "wrote $d"
			done; true`, sandbox.ExecOptions{Env: map[string]string{"TOOLCHAIN": toolchain}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(r.Stdout, "CapEff:\t0000000000000000\n") || strings.Contains(r.Stdout, "remounted") || strings.Contains(r.Stdout, "wrote") {
			t.Errorf("inside the VM: %q", r.Stdout)
		}
	}
	for _, d := range []string{"/usr", "/etc", toolchain} {
		if _, err := os.Stat(filepath.Join(d, ".moat-escape")); err == nil {
			os.Remove(filepath.Join(d, ".moat-escape"))
			t.Errorf("the VM wrote %s on the host", d)
		}
	}
}
