package sandbox_test

import (
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
