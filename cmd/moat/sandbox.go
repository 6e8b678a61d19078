package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/internal/config"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/internal/safetext"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
)

// defaultGCAge is how old a moat VM must be before `moat sandbox gc`
// removes it. A run creates its VM, uses it and deletes it, and runs
// usually last minutes: a moat VM older than an hour is most likely the
// leftover of a run that was killed before it could clean up. A run that
// really lasts longer keeps its VM with a larger --older-than.
const defaultGCAge = time.Hour

func newSandboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "List, recover and remove the sandboxes moat left behind",
		Example: `  moat sandbox ls
  moat sandbox recover moat-local-1234567890
  moat sandbox rm moat-k3v9x2q7pa
  moat sandbox gc --older-than 2h --dry-run`,
		Long: `A run removes its sandbox when it ends. A run that was killed (kill -9, a lost
laptop lid, a crash) can leave it behind, sometimes with the only copy of the
agent's work in it, and on an SSH host or in the emulator with the agent's
processes still running. These commands find such leftovers of every kind
moat can reach: exe.dev VMs (every one moat creates carries the "moat" tag),
local sandbox directories, directories on an SSH host (the ssh:// sandbox of
the repository's config, or --sandbox ssh://…) with their processes, found
by the MOAT_SANDBOX_ID mark every one of them carries, and the VMs of
emulators that were not shut down.

recover brings a leftover's work home as a branch; gc removes leftovers, and
never one that holds work not brought home without asking first.

They use the exe.dev settings of the repository you are in (the [exedev]
table of .moat/config.toml and the MOAT_EXEDEV_* variables), and work
outside a repository too.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for \"moat sandbox\": use ls, recover, rm or gc", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newSandboxLsCmd(), newSandboxRecoverCmd(), newSandboxRmCmd(), newSandboxGCCmd())
	return cmd
}

// sandboxProvider is the exe.dev provider for the sandbox commands: the
// repository's settings when the working directory is in one, the defaults
// (and MOAT_EXEDEV_* variables) otherwise. A broken config file is an
// error.
func sandboxProvider(ctx context.Context) (*exedev.Provider, error) {
	var c config.ExeDev
	p, err := loadProject(ctx, "")
	switch {
	case err == nil:
		// The lobby, key and known_hosts of an untrusted file are refused,
		// as moat run refuses them.
		if err := p.requireTrust(p.Config.ExeDev.HostSettings(), false, false); err != nil {
			return nil, err
		}
		c = p.Config.ExeDev
	case isUsageError(err):
		return nil, err // the config file or .moat/.env is broken
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	// Any other error: not in a git repository (or no git): defaults.
	return exedev.New(c.ProviderConfig().WithEnv()), nil
}

func isUsageError(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

// lobbyFailure adds to an error reaching exe.dev where to look next. The
// lobby's own errors (unregistered key, quota) already say what to do.
func lobbyFailure(err error) error {
	var le *exedev.LobbyError
	if err == nil || errors.As(err, &le) || errors.Is(err, context.Canceled) {
		return err
	}
	var (
		ae *sshx.AuthError
		ke *sshx.KeyError
		he *sshx.HostKeyChangedError
	)
	if errors.As(err, &ae) || errors.As(err, &ke) || errors.As(err, &he) || sshx.IsConnectError(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w\n(moat doctor checks your SSH key and the connection to exe.dev)", err)
	}
	return err
}

// --- ls ---

type sandboxLsOptions struct {
	all     bool
	jsonOut bool
	kinds   []string // --sandbox
}

// vmJSON is one VM or leftover in `moat sandbox ls --json`. The field
// names are stable; those after Kind are set for leftovers other than
// exe.dev VMs.
type vmJSON struct {
	Name       string   `json:"name"`
	Status     string   `json:"status"`
	Image      string   `json:"image"`
	Tags       []string `json:"tags"`
	CreatedAt  *string  `json:"created_at"`  // RFC 3339; null when exe.dev did not say
	AgeSeconds *int64   `json:"age_seconds"` // null when the creation time is unknown
	Kind       string   `json:"kind"`        // exedev, local, sshhost, emulator

	Where     string `json:"where,omitempty"`
	Repo      string `json:"repo,omitempty"`      // the repository its run came from
	Run       string `json:"run,omitempty"`       // that run's id
	InUse     bool   `json:"in_use,omitempty"`    // its moat still runs
	Processes *int   `json:"processes,omitempty"` // still running; null when unknown
	// Unsynced is set when it holds work the repository it came from
	// does not have (or what it holds could not be checked).
	Unsynced *bool  `json:"unsynced,omitempty"`
	Commits  *int   `json:"commits_not_home,omitempty"`
	Work     string `json:"work,omitempty"` // what it holds, for people
}

func newSandboxLsCmd() *cobra.Command {
	var o sandboxLsOptions
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the sandboxes moat left behind (and the exe.dev VMs it created)",
		Example: `  moat sandbox ls
  moat sandbox ls --sandbox local --sandbox ssh://devbox
  moat sandbox ls --all
  moat sandbox ls --json | jq -r '.[] | select(.age_seconds > 3600) | .name'`,
		Long: `Lists the exe.dev VMs that carry the "moat" tag (every VM moat creates does),
oldest first: name, age, status, image and tags. --all lists every VM on the
account.

Then the leftovers of the other kinds (local sandbox directories, directories
on the SSH host of the repository's config or of --sandbox ssh://…, VMs of
emulators that were not shut down), each with what it holds: commits and
uncommitted work not brought home yet (moat sandbox recover NAME brings them
home), and the processes it still runs. One whose moat still runs is "in use".

--sandbox (repeatable: ` + strings.Join(registry.Sandboxes.Specs(), ", ") + `)
lists only those kinds. --json prints a JSON array instead (fields name,
status, image, tags, created_at (RFC 3339 or null), age_seconds (or null),
kind; for leftovers also where, repo, run, in_use, processes, unsynced,
commits_not_home, work).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runSandboxLs(cmd, o) },
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "list every VM on the exe.dev account, not only moat's")
	cmd.Flags().BoolVar(&o.jsonOut, "json", false, "print a JSON array on stdout")
	addKindsFlag(cmd, &o.kinds, "list only these kinds")
	return cmd
}

// addKindsFlag defines --sandbox on the sandbox commands.
func addKindsFlag(cmd *cobra.Command, dst *[]string, usage string) {
	cmd.Flags().StringArrayVar(dst, "sandbox", nil, usage+": "+sandboxChoices()+" (repeatable)")
	registerSandboxCompletion(cmd)
}

func runSandboxLs(cmd *cobra.Command, o sandboxLsOptions) error {
	ctx := cmd.Context()
	if err := checkLeftoverSpecs(o.kinds); err != nil {
		return err
	}
	var (
		vms    []exedev.VMInfo
		exeErr error
	)
	if wantsExeDev(o.kinds) {
		p, err := sandboxProvider(ctx)
		if err != nil {
			return err
		}
		if o.all {
			vms, exeErr = p.ListAll(ctx)
		} else {
			vms, exeErr = p.List(ctx)
		}
		exeErr = lobbyFailure(exeErr)
	}
	left, errs := findLeftovers(ctx, leftoverFinders(ctx, o.kinds))
	for _, f := range left {
		f.inspect(ctx)
	}
	now := time.Now()
	out := cmd.OutOrStdout()
	if o.jsonOut {
		if exeErr != nil {
			return exeErr
		}
		if err := writeVMsJSON(out, vms, left, now); err != nil {
			return err
		}
		return reportFailuresOf(cmd.ErrOrStderr(), errs, "kind", "kinds", "not listed")
	}
	if wantsExeDev(o.kinds) && exeErr == nil {
		printVMs(out, vms, o.all, now)
	}
	if len(left) > 0 {
		if wantsExeDev(o.kinds) {
			fmt.Fprintln(out)
		}
		printLeftovers(out, left, now)
	} else if !wantsExeDev(o.kinds) {
		fmt.Fprintln(out, "no leftover sandboxes")
	}
	if exeErr != nil {
		errs = append(errs, exeErr)
	}
	return reportFailuresOf(cmd.ErrOrStderr(), errs, "kind", "kinds", "not listed")
}

func printVMs(out io.Writer, vms []exedev.VMInfo, all bool, now time.Time) {
	if len(vms) == 0 {
		if all {
			fmt.Fprintln(out, "no VMs on the exe.dev account")
		} else {
			fmt.Fprintln(out, "no moat VMs (moat sandbox ls --all lists every VM on the account)")
		}
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAGE\tSTATUS\tIMAGE\tTAGS")
	for _, vm := range vms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", vm.Name, vmAge(vm, now), orDash(vm.Status), orDash(vm.Image), orDash(strings.Join(vm.Tags, ",")))
	}
	tw.Flush()
}

// printLeftovers prints the leftovers other than exe.dev VMs as a table.
// Their names, places and repositories come from records their
// sandboxes' commands may have written: escaped.
func printLeftovers(out io.Writer, left []*found, now time.Time) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEFTOVER\tKIND\tAGE\tPROCESSES\tWORK\tWHERE\tREPOSITORY")
	for _, f := range left {
		age := "-"
		if !f.Created.IsZero() {
			age = humanAge(now.Sub(f.Created))
		}
		procs := "-"
		if f.Processes >= 0 {
			procs = fmt.Sprint(f.Processes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safetext.String(f.Name), f.Kind, age, procs,
			safetext.String(f.workText()), safetext.String(f.Where), orDash(safetext.String(f.Repo())))
	}
	tw.Flush()
	for _, f := range left {
		if f.inspected && f.unsafeToRemove() {
			fmt.Fprintln(out, "moat sandbox recover NAME brings a leftover's work home, as a branch of the repository you are in")
			break
		}
	}
}

func writeVMsJSON(w io.Writer, vms []exedev.VMInfo, left []*found, now time.Time) error {
	list := make([]vmJSON, 0, len(vms)+len(left))
	for _, vm := range vms {
		j := vmJSON{Name: vm.Name, Status: vm.Status, Image: vm.Image, Tags: vm.Tags, Kind: "exedev"}
		if j.Tags == nil {
			j.Tags = []string{}
		}
		if !vm.CreatedAt.IsZero() {
			j.CreatedAt, j.AgeSeconds = jsonCreated(vm.CreatedAt, now)
		}
		list = append(list, j)
	}
	for _, f := range left {
		j := vmJSON{Name: f.Name, Status: "leftover", Tags: []string{}, Kind: f.Kind, Where: f.Where,
			Repo: f.Repo(), Run: f.Labels[sandbox.LabelRun], InUse: f.InUse}
		if f.InUse {
			j.Status = "in use"
		}
		if !f.Created.IsZero() {
			j.CreatedAt, j.AgeSeconds = jsonCreated(f.Created, now)
		}
		if f.Processes >= 0 {
			n := f.Processes
			j.Processes = &n
		}
		if f.inspected {
			u, n := f.unsafeToRemove(), f.pending.Ahead
			j.Unsynced, j.Work = &u, f.workText()
			if f.inspectErr == nil && !f.home {
				j.Commits = &n
			}
		}
		list = append(list, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(list)
}

func jsonCreated(t, now time.Time) (*string, *int64) {
	ts := t.UTC().Format(time.RFC3339)
	age := int64(max(now.Sub(t), 0) / time.Second)
	return &ts, &age
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// vmAge is the VM's age for people ("45s", "12m", "3h", "2d"), "-" when
// unknown.
func vmAge(vm exedev.VMInfo, now time.Time) string {
	if vm.CreatedAt.IsZero() {
		return "-"
	}
	return humanAge(now.Sub(vm.CreatedAt))
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(d, 0)/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dd", d/(24*time.Hour))
}

// shortDuration prints a duration without zero units: "1h", "90m" as
// "1h30m", "30s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// --- rm ---

type sandboxRmOptions struct {
	force bool
	kinds []string
}

func newSandboxRmCmd() *cobra.Command {
	var o sandboxRmOptions
	cmd := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove sandboxes moat left behind, or exe.dev VMs it created",
		Long: `Removes the named leftovers (as moat sandbox ls names them; KIND:NAME when a
name is ambiguous) and exe.dev VMs. A leftover's processes are killed first.

A leftover that holds work not brought home (moat sandbox ls says so), or one
whose moat still runs, is refused: moat sandbox recover NAME brings the work
home first; --force removes it anyway, and the work with it. A VM without the
"moat" tag was not made by moat and is refused (it may be one of your own
machines); --force removes it anyway. Names that do not exist are reported.`,
		Example: `  moat sandbox rm moat-k3v9x2q7pa
  moat sandbox rm moat-local-1234567890
  moat sandbox rm --force my-old-vm`,
		Args: usageArgs(func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("moat sandbox rm needs at least one sandbox or VM name (moat sandbox ls lists them)")
			}
			return nil
		}),
		ValidArgsFunction: completeMoatVMs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSandboxRm(cmd, args, o)
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "also remove leftovers with work not brought home, and VMs without the moat tag")
	addKindsFlag(cmd, &o.kinds, "look only at these kinds")
	return cmd
}

func runSandboxRm(cmd *cobra.Command, names []string, o sandboxRmOptions) error {
	ctx := cmd.Context()
	if err := checkLeftoverSpecs(o.kinds); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	var failed []error
	// Leftovers first: they need no exe.dev account.
	left, errs := findLeftovers(ctx, leftoverFinders(ctx, o.kinds))
	var vmNames []string
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		f, err := lookupLeftover(left, name)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		if f == nil {
			vmNames = append(vmNames, name)
			continue
		}
		if err := removeLeftover(ctx, out, f, o.force); err != nil {
			failed = append(failed, err)
		}
	}
	if len(vmNames) > 0 {
		if !wantsExeDev(o.kinds) {
			for _, n := range vmNames {
				failed = append(failed, fmt.Errorf("%s: no such leftover sandbox (moat sandbox ls lists them)", n))
			}
			failed = append(failed, errs...)
		} else {
			failed = append(failed, removeVMs(ctx, out, vmNames, o.force)...)
		}
	}
	if len(vmNames) == len(seen) {
		return reportFailuresOf(cmd.ErrOrStderr(), failed, "VM", "VMs", "not removed")
	}
	return reportFailures(cmd.ErrOrStderr(), failed, "not removed")
}

// removeLeftover removes one leftover, unless it is in use or holds work
// not brought home (force removes it anyway).
func removeLeftover(ctx context.Context, out io.Writer, f *found, force bool) error {
	name := safetext.String(f.Name)
	if f.InUse && !force {
		return fmt.Errorf("%s: not removed: its moat still runs (pid %d), and removes it when it ends; --force removes it anyway", name, f.Owner.PID)
	}
	f.inspect(ctx)
	if f.unsafeToRemove() && !force {
		return fmt.Errorf("%s: not removed: it holds %s%s; moat sandbox recover %s brings it home first, --force removes it anyway", name, holdsText(f), f.fromText(), name)
	}
	if err := f.finder.RemoveLeftover(ctx, f.Leftover); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(out, "removed %s (%s%s)\n", name, f.Kind, killedText(f))
	forgetRun(ctx, f)
	return nil
}

// holdsText says what a leftover holds that may be lost.
func holdsText(f *found) string {
	if f.inspectErr != nil {
		return "work moat could not check (" + firstLine(f.inspectErr.Error()) + ")"
	}
	return strings.TrimSuffix(f.workText(), " not brought home") + " not brought home"
}

func killedText(f *found) string {
	if f.Processes > 0 {
		return ", " + plural(f.Processes, "process", "processes") + " killed"
	}
	return ""
}

func removeVMs(ctx context.Context, out io.Writer, names []string, force bool) []error {
	p, release, err := heldProvider(ctx)
	if err != nil {
		return []error{err}
	}
	defer release()
	// List first: rm on exe.dev does not say whether a VM existed, and the
	// tags decide whether moat may remove it.
	all, err := p.ListAll(ctx)
	if err != nil {
		return []error{lobbyFailure(err)}
	}
	byName := map[string]exedev.VMInfo{}
	for _, vm := range all {
		byName[vm.Name] = vm
	}
	var failed []error
	for _, name := range names {
		vm, ok := byName[name]
		switch {
		case !ok:
			failed = append(failed, fmt.Errorf("%s: no such VM on the exe.dev account, nor leftover sandbox (moat sandbox ls --all lists them)", name))
			continue
		case !vm.HasTag(exedev.Tag) && !force:
			failed = append(failed, fmt.Errorf("%s: not removed: it has no %q tag, so moat did not create it; --force removes it anyway", name, exedev.Tag))
			continue
		}
		if err := p.Remove(ctx, name); err != nil {
			failed = append(failed, lobbyFailure(err))
			continue
		}
		fmt.Fprintf(out, "removed %s\n", name)
	}
	return failed
}

// reportFailures returns the one failure, or prints several and returns a
// count.
func reportFailures(errOut io.Writer, failed []error, what string) error {
	return reportFailuresOf(errOut, failed, "sandbox", "sandboxes", what)
}

// reportFailuresOf is reportFailures counting one or many.
func reportFailuresOf(errOut io.Writer, failed []error, one, many, what string) error {
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	for _, err := range failed {
		printError(errOut, err)
	}
	return fmt.Errorf("%s %s", plural(len(failed), one, many), what)
}

// completeMoatVMs completes VM names with the moat VMs, quickly and
// silently: a shell completion must never hang or print errors.
func completeMoatVMs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := sandboxProvider(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	vms, err := p.List(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, vm := range vms {
		if strings.HasPrefix(vm.Name, toComplete) && !slices.Contains(args, vm.Name) {
			names = append(names, vm.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// --- gc ---

type sandboxGCOptions struct {
	olderThan time.Duration
	dryRun    bool
	recover   bool // bring unsynced work home, then remove
	force     bool // remove even with unsynced work
	kinds     []string
	limits    syncLimits // on what gc --recover brings home
	// ask, when set, asks the user a yes/no question (a terminal is
	// attached); nil means never ask.
	ask func(question string) bool
}

func newSandboxGCCmd() *cobra.Command {
	var o sandboxGCOptions
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove the sandboxes and VMs left behind by interrupted runs",
		Long: `Removes the leftovers of runs that were killed before they could clean up.

Local sandboxes, sandboxes on SSH hosts and emulator VMs record which moat
made them: gc removes those whose moat is gone, with their processes (one made
on another computer, which gc cannot check, once it is older than
--older-than). Before it removes one, gc looks inside: a leftover that holds
commits or uncommitted work not brought home is never removed silently. On a
terminal gc asks whether to bring the work home first (as moat sandbox
recover does, into the repository it came from, or the one you are in);
otherwise it keeps the leftover and says how to recover it. --recover brings
the work home without asking, then removes; --force removes without looking.

exe.dev VMs with the "moat" tag are removed once older than --older-than
(default 1h). A run deletes its VM when it ends, and runs usually last
minutes, so a moat VM older than an hour is most likely the leftover of a run
that was killed before it could clean up. A run in progress (here or on
another machine using the same exe.dev account) that has lasted longer would
lose its VM: give a larger --older-than when you run long jobs. A VM whose
creation time exe.dev does not report, or that moat kept because it holds an
agent's work, is never removed by gc (moat sandbox rm NAME removes it).

--dry-run lists what would be removed. --sandbox (repeatable) limits gc to
those kinds.`,
		Example: `  moat sandbox gc --dry-run
  moat sandbox gc --recover
  moat sandbox gc --older-than 6h`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stdioIsTerminal(cmd.InOrStdin(), cmd.OutOrStdout()) {
				o.ask = askYesNo(cmd.InOrStdin(), cmd.OutOrStdout())
			}
			return runSandboxGC(cmd, o)
		},
	}
	cmd.Flags().DurationVar(&o.olderThan, "older-than", defaultGCAge, "remove moat VMs (and leftovers whose moat gc cannot check) older than this")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "list what would be removed, remove nothing")
	cmd.Flags().BoolVar(&o.recover, "recover", false, "bring the work of leftovers home as branches, then remove them")
	cmd.Flags().BoolVar(&o.force, "force", false, "remove leftovers even when they hold work not brought home")
	addKindsFlag(cmd, &o.kinds, "collect only these kinds")
	addLimitFlags(cmd, &o.limits)
	cmd.MarkFlagsMutuallyExclusive("recover", "force")
	return cmd
}

// askYesNo asks on a terminal; the answer is yes unless it starts with n.
func askYesNo(in io.Reader, out io.Writer) func(string) bool {
	r := bufio.NewReader(in)
	return func(q string) bool {
		fmt.Fprintf(out, "%s [Y/n] ", q)
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(out)
			return false
		}
		a := strings.ToLower(strings.TrimSpace(line))
		return !strings.HasPrefix(a, "n")
	}
}

func runSandboxGC(cmd *cobra.Command, o sandboxGCOptions) error {
	if o.olderThan < 0 {
		return usageErrorf("--older-than %s: want a duration of 0 or more, e.g. 1h", o.olderThan)
	}
	if err := checkLeftoverSpecs(o.kinds); err != nil {
		return err
	}
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	left, failed := findLeftovers(ctx, leftoverFinders(ctx, o.kinds))
	failed = append(failed, gcLeftovers(ctx, out, left, o)...)
	if wantsExeDev(o.kinds) {
		failed = append(failed, gcVMs(ctx, out, o)...)
	}
	return reportFailures(cmd.ErrOrStderr(), failed, "not removed")
}

// gcLeftovers removes the leftovers whose moat is gone, bringing their
// work home first, or keeping them, when they hold some.
func gcLeftovers(ctx context.Context, out io.Writer, left []*found, o sandboxGCOptions) []error {
	if len(left) == 0 {
		return nil
	}
	now := time.Now()
	var failed []error
	removed, kept := 0, 0
	for _, f := range left {
		name := safetext.String(f.Name)
		age := "unknown age"
		if !f.Created.IsZero() {
			age = "age " + humanAge(now.Sub(f.Created))
		}
		switch {
		case f.InUse:
			kept++
			fmt.Fprintf(out, "kept %s: its moat still runs (pid %d)\n", name, f.Owner.PID)
			continue
		case f.Kept:
			kept++
			fmt.Fprintf(out, "kept %s: moat kept it on purpose (exec --keep, or a run that could not bring the work out); moat sandbox recover %s brings its work home, moat sandbox rm %s removes it\n", name, name, name)
			continue
		case !f.Owner.Gone() && (f.Created.IsZero() || now.Sub(f.Created) < o.olderThan):
			kept++
			fmt.Fprintf(out, "kept %s (%s, %s): gc cannot tell whether the moat that made it still runs (on another computer?), and it is younger than %s\n", name, f.Kind, age, shortDuration(o.olderThan))
			continue
		}
		if !o.force {
			f.inspect(ctx)
		}
		if f.unsafeToRemove() {
			yes := o.recover
			if !yes && o.ask != nil && f.inspectErr == nil && !o.dryRun {
				yes = o.ask(fmt.Sprintf("%s (%s, %s) holds %s%s. Bring it home first?", name, f.Kind, age, holdsText(f), f.fromText()))
			}
			switch {
			case o.dryRun:
				kept++
				fmt.Fprintf(out, "would keep %s: it holds %s%s (moat sandbox recover %s brings it home)\n", name, holdsText(f), f.fromText(), name)
				continue
			case !yes || f.inspectErr != nil:
				kept++
				fmt.Fprintf(out, "kept %s: it holds %s%s; moat sandbox recover %s brings it home (gc --recover does that for every leftover, then removes them; gc --force removes them anyway)\n", name, holdsText(f), f.fromText(), name)
				continue
			}
			if _, err := recoverInto(ctx, out, f, true, o.limits); err != nil {
				kept++
				failed = append(failed, fmt.Errorf("%w; %s is kept", err, name))
				continue
			}
		}
		if o.dryRun {
			fmt.Fprintf(out, "would remove %s (%s, %s)\n", name, f.Kind, age)
			removed++
			continue
		}
		if err := f.finder.RemoveLeftover(ctx, f.Leftover); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", name, err))
			continue
		}
		removed++
		fmt.Fprintf(out, "removed %s (%s, %s%s)\n", name, f.Kind, age, killedText(f))
		forgetRun(ctx, f)
	}
	if o.dryRun {
		fmt.Fprintf(out, "%s would be removed, %d kept (dry run: nothing was removed)\n", plural(removed, "leftover sandbox", "leftover sandboxes"), kept)
	} else {
		fmt.Fprintf(out, "removed %s, %d kept\n", plural(removed, "leftover sandbox", "leftover sandboxes"), kept)
	}
	return failed
}

// forgetRun removes the refs the leftover's run left in the repository
// it came from, once nothing there is needed (moat.ForgetRun).
func forgetRun(ctx context.Context, f *found) {
	if repo, run := f.Repo(), f.Labels[sandbox.LabelRun]; run != "" && filepath.IsAbs(repo) {
		if _, err := os.Stat(repo); err == nil {
			moat.ForgetRun(ctx, repo, run)
		}
	}
}

// gcVMs removes the moat VMs on exe.dev older than --older-than.
func gcVMs(ctx context.Context, out io.Writer, o sandboxGCOptions) []error {
	p, release, err := heldProvider(ctx)
	if err != nil {
		return []error{err}
	}
	defer release()
	vms, err := p.List(ctx)
	if err != nil {
		return []error{lobbyFailure(err)}
	}
	now := time.Now()
	age := shortDuration(o.olderThan)
	old, undated, kept := gcSelect(vms, now, o.olderThan)
	for _, vm := range vms {
		if vm.HasTag(exedev.KeptTag) {
			fmt.Fprintf(out, "kept %s: it holds an agent's work moat could not bring out (see that run's output); moat sandbox rm %s removes it once the work is safe\n", vm.Name, vm.Name)
		}
	}
	for _, vm := range undated {
		fmt.Fprintf(out, "kept %s: exe.dev does not say when it was created, and gc removes only VMs it can date (moat sandbox rm %s removes it)\n", vm.Name, vm.Name)
	}
	removed := 0
	var failed []error
	for _, vm := range old {
		if o.dryRun {
			fmt.Fprintf(out, "would remove %s (age %s)\n", vm.Name, vmAge(vm, now))
			continue
		}
		if err := p.Remove(ctx, vm.Name); err != nil {
			failed = append(failed, lobbyFailure(err))
			continue
		}
		removed++
		fmt.Fprintf(out, "removed %s (age %s)\n", vm.Name, vmAge(vm, now))
	}
	if o.dryRun {
		fmt.Fprintf(out, "%s older than %s would be removed, %d kept (dry run: nothing was removed)\n", plural(len(old), "moat VM", "moat VMs"), age, kept)
	} else {
		fmt.Fprintf(out, "removed %s older than %s, %d kept\n", plural(removed, "moat VM", "moat VMs"), age, kept)
	}
	return failed
}

// --- recover ---

type sandboxRecoverOptions struct {
	kinds  []string
	force  bool
	limits syncLimits
}

func newSandboxRecoverCmd() *cobra.Command {
	var o sandboxRecoverOptions
	cmd := &cobra.Command{
		Use:   "recover NAME",
		Short: "Bring the work in a leftover sandbox home, as a branch",
		Long: `Brings home what a leftover sandbox (moat sandbox ls lists them) holds that was
not brought home yet: the agent's commits after the last sync, exactly as
made, and what it left uncommitted as one more commit, labelled as such. They
arrive through the same checks as a run's, in the repository you are in (or,
outside a repository, the one the sandbox came from), on a new branch: the
run's own, moat/<run-id>, when it does not exist yet, else
moat/recovered-NAME. The branch and its commits are printed. Nothing else in
your repository changes; merge the branch where you want it. (gc --recover
brings work only into the repository a leftover came from, and only when it
is sure of that: a local sandbox's record, which the agent cannot reach, or
the repository gc runs in.)

The sandbox stays as it is: remove it with moat sandbox rm NAME (or gc) once
the work is safe. A sandbox whose moat still runs is refused (that moat brings
its work home itself); --force recovers from it anyway.`,
		Example: `  moat sandbox recover moat-local-1234567890
  git log --oneline main..moat/recovered-moat-local-1234567890`,
		Args: usageArgs(func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("moat sandbox recover needs one leftover sandbox name (moat sandbox ls lists them)")
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error { return runSandboxRecover(cmd, args[0], o) },
	}
	addKindsFlag(cmd, &o.kinds, "look only at these kinds")
	cmd.Flags().BoolVar(&o.force, "force", false, "recover from a sandbox whose moat still runs")
	addLimitFlags(cmd, &o.limits)
	return cmd
}

func runSandboxRecover(cmd *cobra.Command, name string, o sandboxRecoverOptions) error {
	ctx := cmd.Context()
	if err := checkLeftoverSpecs(o.kinds); err != nil {
		return err
	}
	if err := o.limits.check(); err != nil {
		return err
	}
	left, errs := findLeftovers(ctx, leftoverFinders(ctx, o.kinds))
	f, err := lookupLeftover(left, name)
	if err != nil {
		return err
	}
	if f == nil {
		msg := fmt.Sprintf("%s: no such leftover sandbox (moat sandbox ls lists them; an exe.dev VM's work is fetched as its run's output says)", name)
		if len(errs) > 0 {
			msg += "; and " + errors.Join(errs...).Error()
		}
		return errors.New(msg)
	}
	if f.InUse && !o.force {
		return fmt.Errorf("%s: its moat still runs (pid %d), and brings the work home itself; --force recovers from it anyway", safetext.String(f.Name), f.Owner.PID)
	}
	out := cmd.OutOrStdout()
	res, err := recoverInto(ctx, out, f, false, o.limits)
	if err != nil {
		return err
	}
	if res.Branch != "" || res.UncommittedBranch != "" {
		fmt.Fprintf(out, "the sandbox is left as it was: moat sandbox rm %s removes it\n", safetext.String(f.Name))
	}
	return nil
}

// gcSelect picks the VMs gc removes: those created at least olderThan
// before now. A VM with no creation time is never picked (undated), nor
// one moat kept because it holds an agent's work (exedev.KeptTag); kept
// counts every VM not picked.
func gcSelect(vms []exedev.VMInfo, now time.Time, olderThan time.Duration) (old, undated []exedev.VMInfo, kept int) {
	for _, vm := range vms {
		switch {
		case vm.HasTag(exedev.KeptTag):
			kept++
		case vm.CreatedAt.IsZero():
			undated = append(undated, vm)
			kept++
		case now.Sub(vm.CreatedAt) < olderThan:
			kept++
		default:
			old = append(old, vm)
		}
	}
	return old, undated, kept
}

// heldProvider is sandboxProvider with its lobby connection held open
// until release, for commands that talk to the lobby several times.
func heldProvider(ctx context.Context) (p *exedev.Provider, release func(), err error) {
	if p, err = sandboxProvider(ctx); err != nil {
		return nil, nil, err
	}
	if release, err = p.Hold(); err != nil {
		return nil, nil, lobbyFailure(err)
	}
	return p, release, nil
}

// wantsExeDev says whether the exe.dev VMs are part of a listing.
func wantsExeDev(specs []string) bool { return len(specs) == 0 || slices.Contains(specs, "exedev") }
