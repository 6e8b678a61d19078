package exedev_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/sandboxtest"
)

// assertNoVMs fails the test if the emulator still has VMs.
func assertNoVMs(t *testing.T, srv *exedevtest.Server) {
	t.Helper()
	if vms := srv.VMs(); len(vms) > 0 {
		t.Errorf("VMs left on the emulator: %v", vms)
	}
}

func TestConformance(t *testing.T) {
	srv := exedevtest.NewServer(t)
	t.Cleanup(func() { assertNoVMs(t, srv) }) // runs after the suite's own Close
	sandboxtest.Run(t, exedev.New(srv.Config()))
}

func TestCreateTagsAndWorkDir(t *testing.T) {
	srv := exedevtest.NewServer(t)
	cfg := srv.Config()
	cfg.Tags = []string{"team-a"}
	h, err := exedev.New(cfg).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vm := h.(*exedev.Handle).VM()
	if !strings.HasPrefix(vm.Name, "moat-") {
		t.Errorf("VM name %q", vm.Name)
	}
	if got := strings.Join(vm.Tags, ","); got != "moat,team-a" {
		t.Errorf("tags %q, want moat,team-a", got)
	}
	r, err := h.Exec(t.Context(), `printf '%s' "$HOME/workspace"`, sandbox.ExecOptions{})
	if err != nil || r.Stdout != h.WorkDir() {
		t.Errorf("WorkDir %q, want $HOME/workspace = %q (%v)", h.WorkDir(), r.Stdout, err)
	}
	if got := srv.VMs(); len(got) != 1 || got[0] != vm.Name {
		t.Errorf("emulator VMs %v, want [%s]", got, vm.Name)
	}
	// Close with an already-cancelled context still deletes the VM.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	assertNoVMs(t, srv)
	for _, c := range srv.Transcript() {
		if strings.HasPrefix(c.Command, "new ") && !strings.Contains(c.Command, "--tag=moat") {
			t.Errorf("new without the moat tag: %q", c.Command)
		}
	}
}

func TestReadyDelay(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithReadyDelay(time.Second))
	start := time.Now()
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatalf("Create with a VM that needs 1s to boot: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Create returned after %v, before the VM was ready", d)
	}
	if r, err := h.Exec(t.Context(), "echo up", sandbox.ExecOptions{}); err != nil || r.Stdout != "up\n" {
		t.Errorf("first exec: %v %+v", err, r)
	}
	h.Close(t.Context())
	assertNoVMs(t, srv)
}

func TestNeverReadyDeletesVM(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithReadyDelay(time.Hour))
	cfg := srv.Config()
	cfg.ReadyTimeout = 2 * time.Second
	_, err := exedev.New(cfg).Create(t.Context(), sandbox.CreateOptions{})
	if err == nil {
		t.Fatal("Create succeeded with a VM that never became ready")
	}
	t.Logf("user sees: %v", err)
	if !strings.Contains(err.Error(), "not ready after 2s") {
		t.Errorf("error %q does not say the VM was not ready in time", err)
	}
	assertNoVMs(t, srv)
}

func TestCancelledCreateDeletesVM(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithReadyDelay(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	// Cancel once `new` has been answered: the VM is then being waited for.
	cancelWhen(t, cancel, func() bool { return countNew(srv) > 0 })
	_, err := exedev.New(srv.Config()).Create(ctx, sandbox.CreateOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Create: %v, want an error wrapping context.Canceled", err)
	}
	if n := countNew(srv); n != 1 {
		t.Fatalf("the lobby saw %d new commands, want 1 (cancel should land while waiting for the VM)", n)
	}
	assertNoVMs(t, srv)
}

// cancelWhen calls cancel as soon as cond holds, polling, or after 10s
// (the test's own checks then fail).
func cancelWhen(t *testing.T, cancel context.CancelFunc, cond func() bool) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		defer cancel()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() && time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
}

func countNew(srv *exedevtest.Server) int {
	n := 0
	for _, c := range srv.Transcript() {
		if strings.HasPrefix(c.Command, "new ") {
			n++
		}
	}
	return n
}

func TestQuota(t *testing.T) {
	for _, stderr := range []bool{false, true} {
		opts := []exedevtest.Option{exedevtest.WithQuota(1)}
		if stderr {
			opts = append(opts, exedevtest.WithErrorsOnStderr())
		}
		srv := exedevtest.NewServer(t, opts...)
		p := exedev.New(srv.Config())
		h, err := p.Create(t.Context(), sandbox.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Create(t.Context(), sandbox.CreateOptions{})
		var le *exedev.LobbyError
		if !errors.Is(err, exedev.ErrQuota) || !errors.As(err, &le) {
			t.Fatalf("errors on stderr=%v: second Create: %v, want ErrQuota", stderr, err)
		}
		if !strings.Contains(le.Message, "maximum number of VMs allowed on your plan") {
			t.Errorf("the server's words are lost: %q", le.Message)
		}
		if !sandbox.IsPermanent(err) {
			t.Errorf("a quota error is not sandbox.IsPermanent: %v", err)
		}
		t.Logf("user sees: %v", err)
		h.Close(t.Context())
		assertNoVMs(t, srv)
	}
}

func TestNameTakenIsRetried(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithTakenNames("moat-taken-one", "moat-taken-two", "moat-taken-three"))
	names := []string{"moat-taken-one", "moat-free-one"}
	var i atomic.Int32
	defer exedev.SetNameSource(func() string { return names[int(i.Add(1)-1)%len(names)] })()
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatalf("Create should retry a taken name: %v", err)
	}
	if got := h.(*exedev.Handle).VM().Name; got != "moat-free-one" {
		t.Errorf("VM %q", got)
	}
	h.Close(t.Context())

	names = []string{"moat-taken-one", "moat-taken-two", "moat-taken-three"}
	i.Store(0)
	_, err = exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if !errors.Is(err, exedev.ErrNameTaken) || !strings.Contains(err.Error(), `VM name "moat-taken-three" is not available`) {
		t.Fatalf("Create with every name taken: %v", err)
	}
	assertNoVMs(t, srv)
}

func TestUnregisteredKey(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithUnregisteredKey())
	_, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if !errors.Is(err, exedev.ErrUnregistered) || !strings.Contains(err.Error(), "Please complete registration by running: ssh exe.dev") {
		t.Fatalf("Create with an unregistered key: %v", err)
	}
	t.Logf("user sees: %v", err)
	assertNoVMs(t, srv)
}

func TestDroppedConnectionMidExec(t *testing.T) {
	// Exec 1 is the provider's own setup; the drop hits the user's first.
	srv := exedevtest.NewServer(t, exedevtest.WithDropMidExec(2))
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	_, err = h.Exec(t.Context(), "echo partial; sleep 5; echo never", sandbox.ExecOptions{})
	if err == nil {
		t.Fatal("Exec over a dropped connection returned a result, want an error")
	}
	t.Logf("user sees: %v", err)
	r, err := h.Exec(t.Context(), "echo again", sandbox.ExecOptions{})
	if err != nil || r.Stdout != "again\n" {
		t.Fatalf("Exec after the drop should redial: %v %+v", err, r)
	}
}

func TestOldShapesAndLegacyRouting(t *testing.T) {
	for name, opt := range map[string]exedevtest.Option{
		"old JSON":       exedevtest.WithOldJSON(),
		"legacy routing": exedevtest.WithLegacyRouting(),
	} {
		t.Run(name, func(t *testing.T) {
			srv := exedevtest.NewServer(t, opt)
			h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r, err := h.Exec(t.Context(), "echo ok", sandbox.ExecOptions{})
			if err != nil || r.Stdout != "ok\n" {
				t.Errorf("exec: %v %+v", err, r)
			}
			if err := h.Close(t.Context()); err != nil {
				t.Error(err)
			}
			assertNoVMs(t, srv)
		})
	}
}

// TestIDExeUsedAlone: with no key configured, ~/.ssh/id_exe is found and used.
func TestIDExeUsedAlone(t *testing.T) {
	srv := exedevtest.NewServer(t)
	cfg := srv.Config()
	home := t.TempDir()
	key, err := os.ReadFile(cfg.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "id_exe"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.IdentityFile = ""
	cfg.SSH.HomeDir = home
	h, err := exedev.New(cfg).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatalf("Create with ~/.ssh/id_exe only: %v", err)
	}
	h.Close(t.Context())
	assertNoVMs(t, srv)
}

// TestBurstLimit: exe.dev silently drops new connections after a burst. The
// provider's dial limiter keeps it under the limit; without it the user gets
// a clear timeout.
func TestBurstLimit(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithBurstLimit(3, 2*time.Second, 3*time.Second))
	cfg := srv.Config()
	cfg.SSH.Limiter = sshx.NewDialLimiter(time.Second, 1) // 1 lobby + 3 VMs over ~3s
	p := exedev.New(cfg)
	var hs []sandbox.Handle
	for range 3 {
		h, err := p.Create(t.Context(), sandbox.CreateOptions{})
		if err != nil {
			t.Fatalf("Create under the dial limiter: %v", err)
		}
		hs = append(hs, h)
	}
	for _, h := range hs {
		h.Close(t.Context())
	}
	assertNoVMs(t, srv)

	// No limiter: the fourth and later connections are black-holed.
	srv = exedevtest.NewServer(t, exedevtest.WithBurstLimit(2, 5*time.Second, 30*time.Second))
	cfg = srv.Config()
	cfg.SSH.Limiter = sshx.NewDialLimiter(time.Millisecond, 100)
	cfg.SSH.ConnectTimeout = time.Second
	cfg.ReadyTimeout = 3 * time.Second
	p = exedev.New(cfg)
	var lastErr error
	for range 3 {
		h, err := p.Create(t.Context(), sandbox.CreateOptions{})
		if err != nil {
			lastErr = err
			break
		}
		defer h.Close(context.Background())
	}
	if lastErr == nil {
		t.Fatal("no Create failed although the emulator drops connections after a burst of 2")
	}
	if !strings.Contains(lastErr.Error(), "no answer within 1s") {
		t.Errorf("error %q does not say the server did not answer", lastErr)
	}
	t.Logf("user sees: %v", lastErr)
}

// BenchmarkCreateToFirstExec measures moat's own overhead from Create to the
// first successful Exec, beyond the time the VM takes to boot. Each
// iteration is a cold start, as in `moat run`: a new provider, so a new
// lobby connection too.
func BenchmarkCreateToFirstExec(b *testing.B) {
	for _, delay := range []time.Duration{0, time.Second, 3 * time.Second} {
		b.Run("delay="+delay.String(), func(b *testing.B) {
			srv := exedevtest.NewServer(b, exedevtest.WithReadyDelay(delay))
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				h, err := exedev.New(srv.Config()).Create(context.Background(), sandbox.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Exec(context.Background(), "true", sandbox.ExecOptions{}); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start) - delay
				b.StopTimer()
				h.Close(context.Background())
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "overhead-ms/op")
		})
	}
}

func TestListAndRemove(t *testing.T) {
	srv := exedevtest.NewServer(t)
	p := exedev.New(srv.Config())
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	name := h.(*exedev.Handle).VM().Name
	vms, err := p.List(t.Context())
	if err != nil || len(vms) != 1 || vms[0].Name != name || vms[0].Status != "running" || !vms[0].HasTag("moat") {
		t.Fatalf("List = %+v, %v; want the one moat VM", vms, err)
	}
	if err := p.Remove(t.Context(), name, "moat-never-existed"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	assertNoVMs(t, srv)
	if err := h.Close(t.Context()); err != nil {
		t.Errorf("Close after the VM was removed elsewhere: %v", err)
	}
	if vms, err := p.List(t.Context()); err != nil || len(vms) != 0 {
		t.Errorf("List after Remove = %v, %v", vms, err)
	}
}

// TestCancelDuringNew: the caller gives up while the lobby is still making
// the VM; the VM it then makes must be deleted.
func TestCancelDuringNew(t *testing.T) {
	srv := exedevtest.NewServer(t, exedevtest.WithNewDelay(time.Second))
	ctx, cancel := context.WithCancel(t.Context())
	// The VM exists before the 1s-slow answer: cancel while `new` runs.
	cancelWhen(t, cancel, func() bool { return len(srv.VMs()) > 0 })
	start := time.Now()
	_, err := exedev.New(srv.Config()).Create(ctx, sandbox.CreateOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Create: %v, want an error wrapping context.Canceled", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("Create returned after %v, before the lobby answered `new`", d)
	}
	if strings.Count(err.Error(), "exe.dev new:") != 1 {
		t.Errorf("error %q repeats its prefix", err)
	}
	assertNoVMs(t, srv)
}

// TestConcurrentClose: a second Close (e.g. from a signal handler) returns
// only when the VM is gone.
func TestConcurrentClose(t *testing.T) {
	srv := exedevtest.NewServer(t)
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			err := h.Close(context.Background())
			if err == nil && len(srv.VMs()) > 0 {
				err = errors.New("Close returned while the VM still exists")
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestPreCancelledCreate: nothing is asked of the lobby, and the error reads once.
func TestPreCancelledCreate(t *testing.T) {
	srv := exedevtest.NewServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := exedev.New(srv.Config()).Create(ctx, sandbox.CreateOptions{})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "may exist") {
		t.Fatalf("Create with a cancelled context: %v", err)
	}
	if n := len(srv.Transcript()); n != 0 {
		t.Errorf("the lobby got %d commands", n)
	}
}

// TestManyConcurrentCreates: VMs made and deleted at the same time must
// not harm each other. The emulator once swept a deleted VM's processes
// by its mount namespace's identity after the namespace was gone, and a
// new VM that got the same identity lost its processes (about 1 create in
// 25 failed at this load).
func TestManyConcurrentCreates(t *testing.T) {
	srv := exedevtest.NewServer(t)
	if !srv.Sandboxed() {
		t.Skip("the emulator runs VMs as plain processes here (no working bubblewrap)")
	}
	p := exedev.New(srv.Config())
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := p.Create(t.Context(), sandbox.CreateOptions{})
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				defer h.Close(t.Context())
				if r, err := h.Exec(t.Context(), "echo ok", sandbox.ExecOptions{}); err != nil || r.Stdout != "ok\n" {
					t.Errorf("Exec: %v %+v", err, r)
				}
			}()
		}
		wg.Wait()
	}
	assertNoVMs(t, srv)
}

// BenchmarkEmulatorExec measures one `true` Exec on a live emulator VM,
// inside the VM's namespaces ("contained") and, as the baseline in the
// same run, as a plain host process ("plain"): the difference is what
// entering the VM costs per command.
func BenchmarkEmulatorExec(b *testing.B) {
	for _, shape := range []struct {
		name string
		opts []exedevtest.Option
	}{{"contained", nil}, {"plain", []exedevtest.Option{exedevtest.WithoutSandbox()}}} {
		b.Run(shape.name, func(b *testing.B) {
			srv := exedevtest.NewServer(b, shape.opts...)
			if shape.opts == nil && !srv.Sandboxed() {
				b.Skip("the emulator cannot contain VMs here (no working bubblewrap)")
			}
			h, err := exedev.New(srv.Config()).Create(context.Background(), sandbox.CreateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			before := childCPU()
			for b.Loop() {
				if r, err := h.Exec(context.Background(), "true", sandbox.ExecOptions{}); err != nil || r.ExitCode != 0 {
					b.Fatal(err, r.ExitCode)
				}
			}
			// CPU time of the processes an exec starts, which a busy
			// machine does not inflate as it does the wall time.
			b.ReportMetric(float64((childCPU()-before).Microseconds())/1000/float64(b.N), "child-cpu-ms/op")
		})
	}
}

// childCPU is the user and system CPU time of this process's reaped
// children (and theirs).
func childCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
