package agent_test

import (
	"errors"
	"testing"

	"github.com/moatdev/moat/agent"
)

func TestRegistry(t *testing.T) {
	made := func(name string) agent.Kind {
		return agent.Kind{Name: name, New: func(agent.Options) (agent.Agent, error) { return nil, errors.New("not in this test") }}
	}
	r := agent.NewRegistry(made("a"), made("b"), made("c"))
	if got := r.Names(); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Errorf("Names() = %q, want registration order", got)
	}
	if err := r.Check("b"); err != nil {
		t.Errorf("Check(b): %v", err)
	}
	if err := r.Check("z"); err == nil || err.Error() != `want "a", "b" or "c"` {
		t.Errorf("Check(z) = %v", err)
	}
	if _, err := r.New("z", agent.Options{}); err == nil || err.Error() != `unknown agent "z": want "a", "b" or "c"` {
		t.Errorf("New(z) = %v", err)
	}
	for _, bad := range []agent.Kind{made("a"), made(""), made("two words"), {Name: "nonew"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", bad.Name)
				}
			}()
			r.Register(bad)
		}()
	}
	if len(r.Kinds()) != 3 {
		t.Errorf("a refused Register changed the registry: %d kinds", len(r.Kinds()))
	}
}
