package command

import "github.com/moatdev/moat/agent"

// Kind describes the command agent to the moat CLI (see agent.Kind): any
// program, named by --agent-cmd or agent_cmd.
var Kind = agent.Kind{
	Name:         "command",
	Summary:      "any program, run with --agent-cmd",
	TakesCommand: true,
	New: func(o agent.Options) (agent.Agent, error) {
		if o.Command == "" {
			return nil, agent.ErrNoCommand
		}
		return New(Config{Command: o.Command}), nil
	},
}
