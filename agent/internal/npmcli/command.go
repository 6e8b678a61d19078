package npmcli

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/internal/shell"
)

// Option is one optional flag of an agent CLI's command line: Flag and
// Value when Value is set. Field names it in errors ("Model"); OneOf,
// when set, lists the values the CLI takes, and What names the setting
// when another is given ("thinking level").
type Option struct {
	Field, Flag, Value string
	OneOf              []string
	What               string
}

// Invocation is the command that runs binary, found as the Tool finds
// it, with the fixed arguments and then each Option that is set, in
// order, and the prompt on stdin. cli is the agent's name, for errors. It
// refuses an empty prompt and an option value the CLI would misread.
func Invocation(cli, binary, fixed, prompt string, opts ...Option) (agent.Invocation, error) {
	if strings.TrimSpace(prompt) == "" {
		return agent.Invocation{}, errors.New(cli + ": the prompt is empty")
	}
	for _, o := range opts {
		if err := CheckOptionValue(cli, o.Field, o.Value); err != nil {
			return agent.Invocation{}, err
		}
	}
	for _, o := range opts {
		if o.Value != "" && o.OneOf != nil && !slices.Contains(o.OneOf, o.Value) {
			return agent.Invocation{}, fmt.Errorf("%s: unknown %s %q: use one of %s", cli, o.What, o.Value, strings.Join(o.OneOf, ", "))
		}
	}
	var b strings.Builder
	b.WriteString(PathAssignment + " " + shell.Quote(binary) + " " + fixed)
	for _, o := range opts {
		if o.Value != "" {
			b.WriteString(" " + o.Flag + " " + shell.Quote(o.Value))
		}
	}
	return agent.Invocation{Cmd: b.String(), Stdin: prompt}, nil
}
