// Package sshcheck holds the `moat doctor` checks every SSH-reached
// sandbox kind shares: whether the SSH agent is consulted and what it
// holds, and whether the host's key is known.
package sshcheck

import (
	"fmt"

	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// Agent checks whether moat consults the SSH agent, and what it holds.
func Agent(c *sandbox.Checks, ex sshx.Explanation) {
	a := ex.Agent
	holds := ""
	if a.Problem == "" {
		holds = fmt.Sprintf("the agent at %s holds %s", a.Socket, Plural(len(a.Keys), "key", "keys"))
	}
	switch {
	case ex.Dest == "" || a.Socket == "" && a.Problem == "":
		c.Add(sandbox.CheckSkip, "ssh agent", "not checked: the SSH settings could not be used (see above)")
	case !a.Consulted && (ex.Source == sshx.KeysExplicit || ex.Source == sshx.KeysPreferred):
		detail := "not consulted: moat uses its one key alone"
		if len(ex.Offered) == 1 && ex.Offered[0].File != "" {
			detail = "not consulted: moat uses " + ex.Offered[0].File + " alone"
		}
		if holds != "" {
			detail += " (" + holds + ")"
		}
		c.Add(sandbox.CheckInfo, "ssh agent", detail)
	case !a.Consulted:
		c.Add(sandbox.CheckInfo, "ssh agent", "not consulted (IdentitiesOnly yes in your ssh_config)")
	case a.Problem != "" && len(ex.Offered) == 0:
		c.Add(sandbox.CheckWarn, "ssh agent", a.Problem, "start one (eval $(ssh-agent); ssh-add) or create ~/.ssh/id_exe")
	case a.Problem != "":
		c.Add(sandbox.CheckInfo, "ssh agent", a.Problem+"; the key files above are used")
	default:
		c.Add(sandbox.CheckOK, "ssh agent", holds)
	}
}

// KnownHosts checks whether the host's key is already known.
func KnownHosts(c *sandbox.Checks, ex sshx.Explanation, host string) {
	switch {
	case ex.KnownHostsErr != nil:
		c.Add(sandbox.CheckFail, "known_hosts", ex.KnownHostsErr.Error(), "fix: repair or move away the known_hosts file named")
	case ex.KnownHostsFile == "":
		c.Add(sandbox.CheckSkip, "known_hosts", "not checked: the SSH settings could not be used (see above)")
	case ex.HostKnown:
		c.Add(sandbox.CheckOK, "known_hosts", fmt.Sprintf("%s is known (%s)", host, ex.KnownHostsFile))
	default:
		c.Add(sandbox.CheckInfo, "known_hosts", fmt.Sprintf("%s is not in %s yet: the first connection trusts its host key and records it there (accept-new); a changed key is refused later", host, ex.KnownHostsFile))
	}
}

// Plural is "1 key" or "2 keys".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
