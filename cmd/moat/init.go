package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/gitsync"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/trust"
	"github.com/moatdev/moat/internal/worktree/hostgit"
)

type initOptions struct {
	repo     string
	sandbox  string
	agent    string
	model    string
	agentCmd string
	force    bool
	yes      bool
	// isTerminal says whether init may ask questions: stdin and stdout
	// are both terminals. Tests replace it.
	isTerminal func(in io.Reader, out io.Writer) bool
}

func newInitCmd() *cobra.Command { return newInitCmdWith(stdioIsTerminal) }

func newInitCmdWith(isTerminal func(io.Reader, io.Writer) bool) *cobra.Command {
	o := initOptions{isTerminal: isTerminal}
	cmd := &cobra.Command{
		Annotations: map[string]string{interruptNotice: "moat: interrupted; nothing was written"},
		Use:         "init [flags]",
		Short:       "Scaffold .moat/ in this repository: config, prompt, .env.example",
		Long: `Writes, in the repository holding the working directory (or --repo):

  .moat/config.toml    settings for moat run: sandbox, agent, model, and every
                       other key commented out with its default
  .moat/prompt.md      a starting prompt; put your task in it
  .moat/.env.example   the credentials your agent needs; copy it to .moat/.env
  .moat/.gitignore     keeps .env, logs/, worktrees/ and patches/ out of git

On a terminal it asks for the sandbox, the agent and the model (Enter takes
the default in brackets); flags answer the questions in advance, and --yes
takes the defaults for the rest. Elsewhere (a script, CI) the flags alone
decide. It writes only the files that are missing and names those it
skipped; --force overwrites them too. The rest of .moat/ (logs, worktrees)
is never touched.`,
		Example: `  moat init                                  # asks on a terminal
  moat init -y                               # exe.dev and Claude Code, no questions
  moat init --sandbox emulator --agent command --agent-cmd 'sh agent.sh'
  moat init --agent codex --model gpt-5-codex --force`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "the repository (default: the one holding the working directory)")
	f.StringVar(&o.sandbox, "sandbox", registry.DefaultSandbox(), sandboxChoices())
	f.StringVar(&o.agent, "agent", registry.DefaultAgent(), "the agent: "+agentChoices())
	f.StringVar(&o.model, "model", "", "model for "+agentsThat(takesModel)+` ("": the agent's default)`)
	f.StringVar(&o.agentCmd, "agent-cmd", "", "the program to run with --agent "+agentsThat(takesCommand)+" (it reads the prompt on stdin)")
	f.BoolVar(&o.force, "force", false, "overwrite the files if they exist")
	f.BoolVarP(&o.yes, "yes", "y", false, "ask nothing: take the defaults for what the flags do not set")
	registerCompletions(cmd)
	return cmd
}

// stdioIsTerminal reports whether in and out are both terminals.
func stdioIsTerminal(in io.Reader, out io.Writer) bool {
	fin, ok1 := in.(*os.File)
	fout, ok2 := out.(*os.File)
	return ok1 && ok2 && term.IsTerminal(int(fin.Fd())) && term.IsTerminal(int(fout.Fd()))
}

// initFile is one file init writes.
type initFile struct {
	rel     string // relative to the repository root
	content string
}

func runInit(cmd *cobra.Command, o initOptions) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	changed := cmd.Flags().Changed

	// Flags first: a bad one is a usage error before anything is asked.
	if err := config.CheckSandbox(o.sandbox); err != nil {
		return usageErrorf("--sandbox %q: %v", o.sandbox, err)
	}
	if err := checkAgentName(o.agent); err != nil {
		return usageErrorf("--agent %q: %v", o.agent, err)
	}
	takesCmd := func() bool { k, _ := registry.Agents.Lookup(o.agent); return k.TakesCommand }
	interactive := !o.yes && o.isTerminal != nil && o.isTerminal(cmd.InOrStdin(), out)
	if changed("agent-cmd") && strings.TrimSpace(o.agentCmd) == "" {
		return usageErrorf("--agent-cmd is empty: give the program to run, such as --agent-cmd 'sh agent.sh'")
	}
	if o.agentCmd != "" && changed("agent") && !takesCmd() {
		return usageErrorf("--agent-cmd is for --agent %s, not --agent %s", agentsThat(takesCommand), o.agent)
	}
	if o.agentCmd != "" && !changed("agent") {
		o.agent = commandAgent() // --agent-cmd alone says which agent
	}
	if takesCmd() && o.agentCmd == "" && !interactive {
		return usageErrorf("--agent %s needs --agent-cmd, the program to run (it reads the prompt on stdin), such as --agent-cmd 'sh agent.sh'", o.agent)
	}

	dir := o.repo
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		dir = wd
	} else if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usageErrorf("--repo %s: no such directory", dir)
	}
	repo, err := locateRepo(ctx, dir)
	if err != nil {
		return err
	}
	root := repo.TopLevel

	files := []initFile{{rel: config.File}, {rel: ".moat/prompt.md"}, {rel: ".moat/.env.example"}, {rel: ".moat/.gitignore"}}
	// Files that exist are left as they are (the user may have edited
	// them), unless --force.
	var existing []string
	skip := map[string]bool{}
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f.rel))); err == nil {
			existing = append(existing, f.rel)
			skip[f.rel] = !o.force
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if len(existing) == len(files) && !o.force {
		fmt.Fprintf(out, "Nothing to write: %s already exist in %s; moat init --force overwrites them (the rest of .moat/ is left alone).\n", strings.Join(existing, ", "), root)
		printNoCommitsNote(ctx, out, root)
		return nil
	}
	if skip[config.File] {
		// The questions are the config's: the existing config answers
		// them (its agent decides .env.example), and flags for it say so.
		if cfg, _, err := config.Load(root); err == nil && cfg.Agent != "" {
			o.agent = cfg.Agent
		}
		for _, f := range []string{"sandbox", "agent", "model", "agent-cmd"} {
			if changed(f) {
				fmt.Fprintf(cmd.ErrOrStderr(), "moat: warning: --%s is a setting of %s, which exists and is left as it is (moat init --force writes it anew)\n", f, config.File)
			}
		}
		interactive = false
	}

	if interactive {
		a := asker{ctx: cmd.Context(), in: bufio.NewReader(cmd.InOrStdin()), out: out}
		fmt.Fprintf(out, "Setting up moat in %s. Enter takes the [default].\n", root)
		if !changed("sandbox") {
			fmt.Fprintln(out, "Sandboxes:")
			for _, k := range registry.Sandboxes.Kinds() {
				fmt.Fprintf(out, "  %-9s %s\n", k.Spec, k.About)
			}
			if o.sandbox, err = a.ask("Sandbox ("+strings.Join(registry.Sandboxes.Specs(), ", ")+")", o.sandbox, config.CheckSandbox); err != nil {
				return err
			}
		}
		if !changed("agent") && o.agentCmd == "" {
			fmt.Fprintln(out, "Agents:")
			for _, k := range registry.Agents.Kinds() {
				fmt.Fprintf(out, "  %-9s %s\n", k.Name, k.Summary)
			}
			if o.agent, err = a.ask("Agent ("+strings.Join(registry.Agents.Names(), ", ")+")", o.agent, checkAgentName); err != nil {
				return err
			}
		}
		if takesCmd() && o.agentCmd == "" {
			nonEmpty := func(s string) error {
				if s == "" {
					return errors.New("the agent command is needed, such as sh agent.sh")
				}
				return nil
			}
			if o.agentCmd, err = a.ask("Agent command (it reads the prompt on stdin)", "", nonEmpty); err != nil {
				return err
			}
		}
		if k, _ := registry.Agents.Lookup(o.agent); k.TakesModel && !changed("model") {
			if o.model, err = a.ask("Model (empty for the agent's default)", o.model, nil); err != nil {
				return err
			}
		}
	}

	files[0].content = config.Template(config.TemplateOptions{Sandbox: o.sandbox, Agent: o.agent, Model: o.model, AgentCmd: o.agentCmd})
	files[1].content = initPrompt
	files[2].content = envExample(o.agent)
	files[3].content = initGitignore

	moatDir := filepath.Join(root, ".moat")
	if err := os.MkdirAll(moatDir, 0o755); err != nil {
		return err
	}
	var written []string
	for _, f := range files {
		if skip[f.rel] {
			continue
		}
		if err := writeInitFile(filepath.Join(root, filepath.FromSlash(f.rel)), f.content); err != nil {
			if len(written) > 0 {
				return fmt.Errorf("%w (after writing %s; run moat init --force to write them all again)", err, strings.Join(written, ", "))
			}
			return err
		}
		written = append(written, f.rel)
	}
	// A config init did not write is not its to trust.
	if !skip[config.File] {
		trustWritten(cmd.ErrOrStderr(), root, files[0].content)
	}
	if interactive {
		fmt.Fprintln(out)
	}
	var skipped, overwritten []string
	for _, rel := range existing {
		if skip[rel] {
			skipped = append(skipped, rel)
		} else {
			overwritten = append(overwritten, rel)
		}
	}
	printInitDone(ctx, out, root, o, initReport{written: written, skipped: skipped, overwritten: overwritten})
	return nil
}

// trustWritten trusts the config init wrote, as written; a later change
// to it needs 'moat trust'.
func trustWritten(errOut io.Writer, root, content string) {
	if store, err := trust.Default(); err != nil {
		fmt.Fprintf(errOut, "moat: warning: %v; run 'moat trust' once it is fixed\n", err)
	} else if err := store.Trust(root, trust.Hash([]byte(content))); err != nil {
		fmt.Fprintf(errOut, "moat: warning: %v; run 'moat trust' once it is fixed\n", err)
	}
}

// initReport is what init did with each file.
type initReport struct {
	written     []string // relative to the repository root
	skipped     []string // existed, left alone
	overwritten []string // existed, replaced (--force)
}

// printNoCommitsNote says, when the repository has no commit yet, that a
// run needs one and how to make it.
func printNoCommitsNote(ctx context.Context, out io.Writer, root string) bool {
	var nc *hostgit.NoCommitsError
	if _, err := hostgit.Head(ctx, 30*time.Second, root); errors.As(err, &nc) {
		fmt.Fprintln(out, "This repository has no commits yet, and a run starts from one; make one first:")
		fmt.Fprintln(out, "  git commit --allow-empty -m init")
		return true
	}
	return false
}

// asker asks questions on a terminal.
type asker struct {
	ctx context.Context // Ctrl-C ends a question at once
	in  *bufio.Reader
	out io.Writer
}

// readLine reads one answer, or gives up when ctx ends (the read is left
// behind; moat is about to exit).
func (a asker) readLine() (string, error) {
	type answer struct {
		line string
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		l, err := a.in.ReadString('\n')
		ch <- answer{l, err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-a.ctx.Done():
		fmt.Fprintln(a.out)
		return "", fmt.Errorf("init: %w; nothing was written", errInterrupted)
	}
}

// ask prints the question with its default and reads an answer until
// check (when set) accepts it. An empty answer is the default.
func (a asker) ask(question, def string, check func(string) error) (string, error) {
	for {
		fmt.Fprintf(a.out, "%s [%s]: ", question, def)
		line, err := a.readLine()
		if errors.Is(err, errInterrupted) {
			return "", err
		}
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			fmt.Fprintln(a.out)
			if errors.Is(err, io.EOF) {
				return "", errors.New("init: no answer (input ended); nothing was written. Run moat init --yes to take the defaults")
			}
			return "", err
		}
		answer := strings.TrimSpace(line)
		if answer == "" {
			answer = def
		}
		if check == nil {
			return answer, nil
		}
		if err := check(answer); err != nil {
			fmt.Fprintf(a.out, "  %q: %v; try again.\n", answer, err)
			continue
		}
		return answer, nil
	}
}

// writeInitFile writes path with mode 0644 whatever the umask, replacing
// it at once: through a temporary file in the same directory.
func writeInitFile(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".moat-init-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func printInitDone(ctx context.Context, out io.Writer, root string, o initOptions, r initReport) {
	verb := "Wrote"
	if len(r.overwritten) > 0 {
		verb = "Wrote (overwriting " + strings.Join(r.overwritten, ", ") + ")"
	}
	kind, _ := registry.Agents.Lookup(o.agent)
	what := "agent " + o.agent
	if o.model != "" && kind.TakesModel {
		what += ", model " + o.model
	}
	about := map[string]string{
		config.File:          fmt.Sprintf("sandbox %s, %s, max_iterations %d", o.sandbox, what, config.DefaultMaxIterations),
		".moat/prompt.md":    "the prompt: put your task in it",
		".moat/.env.example": "the credentials the agent needs",
		".moat/.gitignore":   "keeps .env, logs/, worktrees/ and patches/ out of git",
	}
	fmt.Fprintf(out, "%s in %s:\n", verb, root)
	for _, rel := range r.written {
		fmt.Fprintf(out, "  %-20s %s\n", rel, about[rel])
	}
	if len(r.skipped) > 0 {
		fmt.Fprintf(out, "Skipped, as they exist (moat init --force overwrites them): %s\n", strings.Join(r.skipped, ", "))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Next:")
	step := 0
	next := func(format string, args ...any) {
		step++
		fmt.Fprintf(out, "  %d. "+format+"\n", append([]any{step}, args...)...)
	}
	var nc *hostgit.NoCommitsError
	if _, err := hostgit.Head(ctx, 30*time.Second, root); errors.As(err, &nc) {
		next("Make a first commit: this repository has none, and a run starts from one:\n       git commit --allow-empty -m init")
	}
	next("Describe the task in .moat/prompt.md.")
	next("Give the agent its credentials:\n       cp .moat/.env.example .moat/.env && chmod 600 .moat/.env")
	switch c := kind.Credentials; len(c) {
	case 0:
		fmt.Fprintln(out, "     and list what your agent command needs.")
	case 1:
		fmt.Fprintf(out, "     and fill in %s.\n", c[0])
	default:
		fmt.Fprintf(out, "     and fill in %s (or another of the keys listed there).\n", c[0])
	}
	next("Check the setup: moat doctor")
	next("Try moat offline, on the built-in exe.dev emulator (it needs bubblewrap:\n     apt-get install bubblewrap) with a stand-in agent (its commit lands on\n     the branch moat/try):\n       %s", tryCommand)
	next("Run the agent: moat run")
}

// tryCommand is tryExample, the offline try, cut in two lines.
const tryCommand = `moat run --sandbox emulator --branch moat/try --max-iterations 1 -p try \
         --agent command --agent-cmd 'date > moat-try.txt && git add moat-try.txt && git commit -qm "moat: try"'`

const initGitignore = `# moat's local files: credentials and run output stay out of git.
.env
logs/
worktrees/
patches/
`

const initPrompt = `# Task

TODO: replace this line with the task: what to change, where, and how to
tell it is done.

# How to work

You are in a git repository, in a sandbox. Your commits come back and
will land on {{TARGET_BRANCH}}. Work you leave uncommitted comes back too,
but only as one commit labelled "` + gitsync.DefaultLabel + `",
with no message saying what it is: commit each step yourself.

1. Read the code involved before changing it.
2. Work in small steps. After each step, run the tests (and the build or
   linters the repository uses) and fix what fails.
3. Commit each step with ` + "`git commit`" + `, with a clear message saying what
   changed and why. Do not push, and do not rewrite earlier commits.
4. You may be run again on this prompt, with your earlier commits in
   place: check the git log first, and carry on from there.

When the whole task is done, the tests pass and everything is committed,
print exactly this line, and only then:

<promise>COMPLETE</promise>
`

// envExample is .moat/.env.example with the credentials of the agent
// called name, the first uncommented (with an empty value) and the others
// commented out; for an agent without credentials, an example to fill in.
func envExample(name string) string {
	var b strings.Builder
	b.WriteString(`# Credentials for the sandbox. Copy this file to .moat/.env and fill it in:
#
#   cp .moat/.env.example .moat/.env && chmod 600 .moat/.env
#
# .moat/.env is ignored by git (see .moat/.gitignore); never commit it.
# Only the keys listed in .moat/.env are passed into the sandbox (besides
# your agent's own credential variable when it is set in your environment).
# A key with an empty value (KEY=) takes its value from your environment
# when moat runs. Values reach the sandbox over SSH, never on a command
# line, in a log or in git.
`)
	kind, _ := registry.Agents.Lookup(name)
	if len(kind.Credentials) == 0 {
		b.WriteString(`
# What your agent command needs, for example:
# MY_AGENT_TOKEN=
`)
	} else {
		b.WriteString(credentialBlock(kind, false))
	}
	// The other agents' keys, commented out, for a switch later.
	for _, k := range registry.Agents.Kinds() {
		if k.Name != kind.Name && len(k.Credentials) > 0 {
			b.WriteString(credentialBlock(k, true))
		}
	}
	b.WriteString(`
# Anything else the agent or your tests need in the sandbox, for example:
# GITHUB_TOKEN=
`)
	return b.String()
}

// credentialBlock is kind's part of .moat/.env.example: where its
// credentials come from, then its first key with an empty value and the
// others commented out; all commented out when commented.
func credentialBlock(kind agent.Kind, commented bool) string {
	var b strings.Builder
	b.WriteString("\n")
	help := strings.Split(strings.TrimSpace(kind.CredentialHelp), "\n")
	help[0] = kind.Summary + " (agent " + kind.Name + "): " + help[0]
	for _, l := range help {
		b.WriteString("# " + l + "\n")
	}
	for i, k := range kind.Credentials {
		if i > 0 || commented {
			b.WriteString("# ")
		}
		b.WriteString(k + "=\n")
	}
	return b.String()
}
