package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/moatdev/moat/sandbox"
)

// permanentErr is an error that says whether it is permanent.
type permanentErr struct {
	permanent bool
	err       error
}

func (e permanentErr) Error() string   { return fmt.Sprintf("permanent=%v", e.permanent) }
func (e permanentErr) Unwrap() error   { return e.err }
func (e permanentErr) Permanent() bool { return e.permanent }

func TestIsPermanent(t *testing.T) {
	yes := permanentErr{permanent: true}
	no := permanentErr{permanent: false}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("connection reset"), false},
		{"permanent", yes, true},
		{"wrapped", fmt.Errorf("sync out: %w", yes), true},
		{"joined", errors.Join(errors.New("a"), yes), true},
		{"says no", no, false},
		{"says no, wraps a yes", permanentErr{err: yes}, true},
		{"says no, wraps a join with a yes", permanentErr{err: errors.Join(errors.New("a"), yes)}, true},
		{"joined after a no", errors.Join(no, yes), true},
		{"closed", sandbox.ErrClosed, false},
	} {
		if got := sandbox.IsPermanent(c.err); got != c.want {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestRegistry(t *testing.T) {
	opened := 0
	open := func(ctx context.Context, spec string, env sandbox.Env) (*sandbox.Opened, error) {
		opened++
		return &sandbox.Opened{}, nil
	}
	r := sandbox.NewRegistry(
		sandbox.Kind{Name: "box", Open: open},
		sandbox.Kind{Name: "far", URL: true, Spec: "far://host", Open: open,
			Parse: func(spec string) error {
				if spec == "far://" {
					return errors.New("no host")
				}
				return nil
			}},
	)
	for spec, want := range map[string]string{"box": "box", "far://h": "far", "far:/h": "", "boxes": "", "far": ""} {
		k, ok := r.Lookup(spec)
		if ok != (want != "") || k.Name != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", spec, k.Name, ok, want)
		}
	}
	if err := r.Check("far://"); err == nil || err.Error() != "no host" {
		t.Errorf("Check(far://) = %v, want the kind's Parse error", err)
	}
	if err := r.Check("near"); err == nil || err.Error() != `want "box" or "far://host"` {
		t.Errorf("Check(near) = %v", err)
	}
	o, err := r.Open(context.Background(), "far://h", sandbox.Env{})
	if err != nil || o.Kind.Name != "far" || o.Spec != "far://h" || o.Close == nil || opened != 1 {
		t.Errorf("Open = %+v, %v (opened %d)", o, err, opened)
	}
	if _, err := r.Open(context.Background(), "far://", sandbox.Env{}); err == nil || opened != 1 {
		t.Errorf("Open of a bad spec: %v, opened %d; want an error before the kind's Open", err, opened)
	}
	if got := (sandbox.NewRegistry(sandbox.Kind{Name: "u", URL: true, Open: open})).Specs(); got[0] != "u://…" {
		t.Errorf("a URL kind without Spec is written %q", got[0])
	}
}
