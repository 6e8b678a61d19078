package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/safetext"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// leftovers says what a run leaves behind when moat quits at once (a
// second interrupt, or a shutdown past its bound), and how to recover or
// remove each thing, from the run's moat.Footprint.
type leftovers struct {
	fp     *moat.Footprint
	p      *project
	opened *sandbox.Opened // the sandbox kind's provider and what came with it
	// noWork says the sandbox holds nothing to bring home (moat exec):
	// only how to remove it is said.
	noWork bool
}

// text is the report printed on quitting at once; safe to call while the
// run goes on in another goroutine.
func (l *leftovers) text() string {
	items := l.kept()
	if len(items) == 0 {
		return "moat: nothing of the run is left behind\n"
	}
	var b strings.Builder
	if l.noWork {
		b.WriteString("moat: left behind, as they are now:\n")
	} else {
		b.WriteString("moat: left behind, as they are now (the run's log is in .moat/logs/):\n")
	}
	for _, k := range items {
		fmt.Fprintf(&b, "  %s %s: %s\n", k.What, safetext.String(k.Path), safetext.String(k.Reason))
		if k.Fix != "" {
			fmt.Fprintf(&b, "    %s\n", safetext.Lines(k.Fix, "    "))
		}
	}
	return b.String()
}

// kept lists what the run leaves behind now, each with how to recover or
// remove it.
func (l *leftovers) kept() []moat.Kept {
	items := l.fp.Leftovers()
	h := l.fp.Sandbox()
	if files := l.opened.Files; files != "" && h == nil {
		// What the kind started keeps files that outlive a moat that
		// quits at once (an emulator's); with a sandbox, its entry says
		// to remove them.
		items = append(items, moat.Kept{What: "directory", Path: files, Reason: l.opened.FilesReason,
			Fix: "rm -rf -- " + shell.Quote(files)})
	}
	for i, k := range items {
		switch {
		case k.What != "sandbox" || h == nil:
		case l.noWork:
			items[i].Reason = "the command's sandbox"
			items[i].Fix = "# remove it: " + l.removal(h)
		default:
			items[i].Fix = l.sandboxFix(h, k.Fix)
		}
	}
	return items
}

// sandboxFix says how to bring the agent's work out of the sandbox h and
// remove it. fix is the library's generic recipe (moat.Kept.Fix), used
// for sandboxes on other machines; a sandbox whose files are on this
// computer (local, the emulator) is fetched from directly.
func (l *leftovers) sandboxFix(h sandbox.Handle, fix string) string {
	if work, dir, ok := l.onThisComputer(h); ok {
		q := shell.Quote
		git := "git -C " + q(l.p.Root)
		branch := "moat/recovered-" + l.fp.RunID()
		if l.fp.RunID() == "" {
			branch = "moat/recovered"
		}
		// git fetch reads the agent's repository through upload-pack,
		// which runs none of its hooks or configured commands; running
		// git inside it would. What arrives is checked as sync out does.
		s := "# the agent's repository is " + q(work) + " on this computer; bring its commits home on a branch:\n" +
			git + " -c transfer.fsckObjects=true fetch --no-tags " + q(work) + " +HEAD:refs/heads/" + branch + "\n" +
			"# (files it left uncommitted are only there: copy what you need before removing it)\n" +
			"# remove it: " + removeDirCmd(dir)
		if why := l.opened.Kind.EndsWithProgram; why != "" {
			s += "\n# (" + why + ": its processes have ended)"
		}
		return s
	}
	a := keptSandboxAccess(h)
	help := "# reach it: " + a.Reach
	if a.SSH != "" {
		// ssh joins its arguments into one remote command line, which
		// the remote shell splits again: quote the path twice.
		help += "\n# step 2's copy: " + a.SSH + " " + shell.Quote("cat -- "+shell.Quote(h.WorkDir()+"/"+moat.KeptWorkBundle)) +
			" > " + shell.Quote(filepath.Join(l.p.Root, moat.KeptWorkBundleHost))
	}
	help += "\n# remove it: " + a.Remove
	return strings.TrimRight(fix, "\n") + "\n" + help
}

// removal is the command that removes the sandbox h.
func (l *leftovers) removal(h sandbox.Handle) string {
	if _, dir, ok := l.onThisComputer(h); ok {
		return removeDirCmd(dir)
	}
	return keptSandboxAccess(h).Remove
}

// removeDirCmd removes the host paths that hold all of a sandbox on this
// computer (sandbox.OnHost).
func removeDirCmd(all []string) string {
	cmd := "rm -rf --"
	for _, p := range all {
		cmd += " " + shell.Quote(p)
	}
	return cmd
}

// onThisComputer returns, for a sandbox whose files are on this computer
// (sandbox.OnHost), the host path of its repository and the directory
// that removes all of it.
func (l *leftovers) onThisComputer(h sandbox.Handle) (work string, all []string, ok bool) {
	if oh, isOnHost := h.(sandbox.OnHost); isOnHost {
		return oh.HostPaths()
	}
	return "", nil, false
}
