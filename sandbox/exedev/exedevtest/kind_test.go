package exedevtest_test

import (
	"io"
	"os"
	"testing"

	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
	"github.com/moatdev/moat/sandbox/sandboxtest"
)

// The emulator as a sandbox kind keeps the whole contract, and its VMs
// say where their files are on this computer (sandbox.OnHost), which the
// suite checks; Close of what Open started removes those files.
func TestKindConformance(t *testing.T) {
	opened, err := exedevtest.Kind.Open(t.Context(), "emulator", sandbox.Env{Notices: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("Conformance", func(t *testing.T) { sandboxtest.Run(t, opened.Provider) })
	if opened.Files == "" {
		t.Fatal("no Files: a moat that quits at once could not say what to remove")
	}
	if _, err := os.Stat(opened.Files); err != nil {
		t.Errorf("Files %s: %v", opened.Files, err)
	}
	opened.Close()
	if _, err := os.Stat(opened.Files); !os.IsNotExist(err) {
		t.Errorf("after Close, %s: %v; want it removed", opened.Files, err)
	}
}
