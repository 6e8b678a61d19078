package moat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moatdev/moat/sandbox"
)

// SaveKeptWork copies the agent's work out of the kept sandbox
// (res.Sandbox) into the bundle file dst on the host, then closes the
// sandbox: for a sandbox that ends with this process (the in-process
// emulator), before it does. In the sandbox it runs step 1 of the steps
// Kept prints (what the agent left uncommitted committed, everything the
// host lacks in one bundle). On success the sandbox's Kept entry becomes
// one for the bundle, saying how to fetch it, and res.Sandbox is nil; on
// failure both are left as they were. It goes on after ctx is cancelled
// (an interrupted run saves its work too), for up to 5 minutes.
func (res *RunResult) SaveKeptWork(ctx context.Context, dst string) error {
	h := res.Sandbox
	if h == nil || res.keptSave == "" {
		return errors.New("moat: SaveKeptWork: the run kept no sandbox")
	}
	ctx, cancel := cleanupCtx(ctx, 5*time.Minute)
	defer cancel()
	er, err := h.Exec(ctx, res.keptSave, sandbox.ExecOptions{})
	if err == nil && er.ExitCode != 0 {
		err = fmt.Errorf("exit status %d", er.ExitCode)
		if msg := strings.TrimSpace(lastLinesOf(er.Stderr, 5)); msg != "" {
			err = fmt.Errorf("exit status %d: %s", er.ExitCode, msg)
		}
	}
	if err != nil {
		return fmt.Errorf("moat: writing the agent's work to a bundle in the sandbox: %w", err)
	}
	if err := h.CopyOut(ctx, h.WorkDir()+"/"+KeptWorkBundle, dst); err != nil {
		return fmt.Errorf("moat: copying the agent's work out of the sandbox: %w", err)
	}
	fetch, branch := keptFetchCommand(res.keptRepo, dst)
	for i, k := range res.Kept {
		if k.What == "sandbox" {
			res.Kept[i] = Kept{What: "bundle", Path: dst,
				Reason: "the agent's work could not be brought home, and its sandbox ends with moat: the work was copied to this file",
				Fix:    fetch + "\n# then merge " + branch + " where you want it, and remove " + dst}
		}
	}
	res.Sandbox, res.keptSave = nil, ""
	if err := h.Close(ctx); err != nil {
		return fmt.Errorf("moat: the work is saved in %s, but closing the sandbox failed: %w", dst, err)
	}
	return nil
}
