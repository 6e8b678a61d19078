package main

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/internal/registry"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

// extraKindsVar, set, makes the `moat` of the test scripts register an
// agent and a sandbox kind that only the tests know (registerExtraKinds),
// so that a script can see the CLI take them from the registry: in help,
// completion, init, doctor, config validation and a run.
const extraKindsVar = "MOAT_TEST_EXTRA_KINDS"

// registerExtraKinds registers the agent zzagent and the sandbox kind
// zzbox, as a new agent package and a new sandbox package would, in the
// one place they register.
func registerExtraKinds() {
	registry.Agents.Register(agent.Kind{
		Name:           "zzagent",
		Summary:        "a test-only agent",
		Binary:         "sh",
		Install:        "nothing: sh is everywhere",
		Credentials:    []string{"ZZ_TEST_TOKEN"},
		CredentialHelp: "any value; the test agent only checks that it is there.",
		TakesModel:     true,
		New: func(o agent.Options) (agent.Agent, error) {
			// Says hello with its model and commits, so that a run shows
			// the agent the registry made is the one that ran.
			return zzAgent{command.New(command.Config{Command: `test -n "$ZZ_TEST_TOKEN" && echo "hello from zzagent, model ` + o.Model + `" && date > zz.txt && git add zz.txt && git commit -qm "zzagent: hello"`})}, nil
		},
	})
	registry.Sandboxes.Register(sandbox.Kind{
		Name:    "zzbox",
		Summary: "a test-only sandbox",
		About:   "a local sandbox under another name, for the tests",
		Open: func(ctx context.Context, spec string, env sandbox.Env) (*sandbox.Opened, error) {
			return local.Kind.Open(ctx, local.Kind.Name, env)
		},
		Doctor: func(ctx context.Context, spec string, env sandbox.Env) []sandbox.Check {
			if spec != "zzbox" {
				return nil
			}
			return []sandbox.Check{{Status: sandbox.CheckOK, Name: "zzbox", Detail: "the test sandbox needs nothing"}}
		},
	})
}

// zzAgent is the test agent: a command agent under its own name, with its
// own credential.
type zzAgent struct{ *command.Agent }

func (zzAgent) Name() string            { return "zzagent" }
func (zzAgent) CredentialEnv() []string { return []string{"ZZ_TEST_TOKEN"} }

// TestCompletionsAreTheRegistry: --agent and --sandbox complete to
// exactly the registered names, in order, on every command that has them.
func TestCompletionsAreTheRegistry(t *testing.T) {
	var agents, kinds []string
	for _, k := range registry.Agents.Kinds() {
		agents = append(agents, k.Name)
	}
	for _, k := range registry.Sandboxes.Kinds() {
		name := k.Name
		if k.URL {
			name += "://"
		}
		kinds = append(kinds, name)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--agent", ""}, agents},
		{[]string{"init", "--agent", ""}, agents},
		{[]string{"doctor", "--agent", ""}, agents},
		{[]string{"run", "--sandbox", ""}, kinds},
		{[]string{"exec", "--sandbox", ""}, kinds},
		{[]string{"init", "--sandbox", ""}, kinds},
		{[]string{"doctor", "--sandbox", ""}, kinds},
	} {
		var out, errOut strings.Builder
		if code := runMain(append([]string{"__complete"}, c.args...), &out, &errOut); code != 0 {
			t.Fatalf("__complete %q: exit %d: %s", c.args, code, errOut.String())
		}
		var got []string
		for _, line := range strings.Split(out.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				name, _, _ := strings.Cut(line, "\t")
				got = append(got, name)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("__complete %q = %q, want the registry's %q", c.args, got, c.want)
		}
	}
}

// TestCLINamesNoKind fails when the CLI names an agent or a sandbox kind
// itself instead of asking the registry: a registered name (or a URL
// kind's "scheme://") as a string literal in a switch case or compared
// with == or !=, or an agent package imported. Only the commands that
// are about one kind by nature may import its package: moat dev exedev
// (the emulator) and moat sandbox's exe.dev lobby commands.
func TestCLINamesNoKind(t *testing.T) {
	names := map[string]bool{}
	var prefixes []string
	for _, k := range registry.Agents.Kinds() {
		names[k.Name] = true
	}
	for _, k := range registry.Sandboxes.Kinds() {
		names[k.Name] = true
		if k.URL {
			prefixes = append(prefixes, k.Name+"://")
		}
	}
	named := func(lit ast.Expr) (string, bool) {
		bl, ok := lit.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(bl.Value)
		if err != nil {
			return "", false
		}
		if names[s] {
			return s, true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return s, true
			}
		}
		return "", false
	}
	kindFiles := map[string]bool{"dev.go": true, "sandbox.go": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.HasPrefix(path, "github.com/moatdev/moat/agent/"):
				t.Errorf("%s imports %s: agents come from the registry (internal/registry)", name, path)
			case strings.HasPrefix(path, "github.com/moatdev/moat/sandbox/") && !kindFiles[name]:
				t.Errorf("%s imports %s: sandbox kinds come from the registry (internal/registry)", name, path)
			}
		}
		if kindFiles[name] {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var lits []ast.Expr
			switch n := n.(type) {
			case *ast.CaseClause:
				lits = n.List
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					lits = []ast.Expr{n.X, n.Y}
				}
			case *ast.CallExpr:
				// strings.HasPrefix(spec, "ssh://") and the like.
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "HasPrefix") || ok && sel.Sel.Name == "Contains" {
					lits = n.Args
				}
			}
			for _, l := range lits {
				if s, ok := named(l); ok {
					t.Errorf("%s: %q names an agent or a sandbox kind; ask registry.Agents or registry.Sandboxes instead", fset.Position(l.Pos()), s)
				}
			}
			return true
		})
	}
}

// TestFlagHelpIsTheRegistry: on every command, --agent's help lists every
// registered agent and --sandbox's every sandbox kind, in registration
// order, so that help cannot lag behind the registry.
func TestFlagHelpIsTheRegistry(t *testing.T) {
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		for _, f := range []struct {
			flag  string
			names []string
		}{{"agent", registry.Agents.Names()}, {"sandbox", registry.Sandboxes.Specs()}} {
			fl := c.Flags().Lookup(f.flag)
			if fl == nil {
				continue
			}
			checked++
			at := 0
			for _, n := range f.names {
				i := strings.Index(fl.Usage[at:], n)
				if i < 0 {
					t.Errorf("moat %s --%s: its help %q lacks %s, or lists it out of the registry's order", c.CommandPath(), f.flag, fl.Usage, n)
					break
				}
				at += i + len(n)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	if checked < 6 {
		t.Errorf("only %d --agent and --sandbox flags found; the walk missed commands", checked)
	}
}
