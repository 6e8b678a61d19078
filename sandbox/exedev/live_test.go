package exedev_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/sandboxtest"
)

// TestLive runs the conformance suite against the real exe.dev with your
// usual SSH setup (~/.ssh/id_exe, else your agent and default keys). It
// creates two VMs tagged moat and moat-live-test and deletes them; it then
// checks the lobby for VMs it made that are still there, and removes them.
//
//	MOAT_EXEDEV_LIVE=1 go test ./sandbox/exedev -run TestLive -v
//
// Optional: MOAT_EXEDEV_LOBBY (default exe.dev:22), MOAT_EXEDEV_KEY (a
// private key file), MOAT_EXEDEV_KNOWN_HOSTS, MOAT_EXEDEV_IMAGE. Pointed at
// `moat dev exedev`, the same test runs against the emulator.
func TestLive(t *testing.T) {
	if os.Getenv("MOAT_EXEDEV_LIVE") != "1" {
		t.Skip("talks to the real exe.dev: set MOAT_EXEDEV_LIVE=1 to run")
	}
	cfg := exedev.ConfigFromEnv()
	cfg.Tags = []string{"moat-live-test"}
	cfg.ReadyTimeout = 3 * time.Minute
	p := exedev.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		vms, err := p.List(ctx)
		if err != nil {
			t.Errorf("listing VMs after the test: %v", err)
			return
		}
		for _, vm := range vms {
			if !vm.HasTag("moat-live-test") {
				continue
			}
			t.Errorf("VM %s was left behind; removing it", vm.Name)
			if err := p.Remove(ctx, vm.Name); err != nil {
				t.Errorf("removing %s: %v (remove it by hand: ssh exe.dev rm %s)", vm.Name, err, vm.Name)
			}
		}
	})
	sandboxtest.Run(t, p)
	if t.Failed() {
		t.Log("hint: check `ssh exe.dev whoami` works with the same key: " + strings.TrimSpace(cfg.IdentityFile))
	}
}
