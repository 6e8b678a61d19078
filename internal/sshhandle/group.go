package sshhandle

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// groupStopped is what stopping a command's process group found.
type groupStopped struct {
	// Killed describes each process that was still running and was
	// killed: its PID and command line, cut short.
	Killed []string
	// Gone reports that none of the group's processes is left running.
	Gone bool
}

// groupWaitPolls bounds, in polls 50ms apart, how long the stop script
// waits for the killed processes to be gone (a process in
// uninterruptible sleep dies only when its I/O ends).
const groupWaitPolls = 100

// stopGroupScript kills the processes of process group pgid that carry
// this handle's mark and waits until none is left running; it prints one
// "proc PID ARGS" line for each process it killed, then "gone", or
// "alive" when some outlived the wait.
//
// Where /proc exists, a process counts when it is in the group, is not a
// zombie (a zombie changes nothing, and where the sandbox's init does not
// reap, zombies stay), and carries MOAT_SANDBOX_ID=<id> in its command
// line (the wrapper) or environment (everything the command started). The
// mark also guards against a reused group ID: once every process of the
// group is gone, the number may go to another process, which the mark
// tells apart. Without /proc the whole group is signalled, as kill(1)
// allows.
//
// The liveness test is "kill -s 0 -- -N" and not "kill -0 -- -N", which
// dash reads as signal 0 sent to a process named "--" and fails, so that a
// wait written that way never waits.
func (h *Handle) stopGroupScript(pgid int) string {
	return fmt.Sprintf(`g=%d; m='MOAT_SANDBOX_ID=%s'; polls=%d
pause() { sleep 0.05 2>/dev/null || sleep 1; }
if [ -d /proc/self ]; then
	live() {
		for d in /proc/[0-9]*; do
			read -r s 2>/dev/null <"$d/stat" || continue
			set -- ${s##*) }
			[ "$3" = "$g" ] && [ "$1" != Z ] || continue
			cat "$d/cmdline" "$d/environ" 2>/dev/null | tr '\0' '\n' | grep -qF "$m" || continue
			echo "${d#/proc/}"
		done
	}
	seen=' '; i=0
	while :; do
		ps=$(live)
		[ -n "$ps" ] || { echo gone; exit 0; }
		for p in $ps; do
			case "$seen" in *" $p "*) ;; *)
				printf 'proc %%s %%s\n' "$p" "$(tr '\0\n' '  ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"
				seen="$seen$p "
			esac
			kill -s KILL "$p" 2>/dev/null
		done
		i=$((i+1)); [ $i -le $polls ] || { echo alive; exit 0; }
		pause
	done
fi
kill -s KILL -- "-$g" 2>/dev/null
i=0
while kill -s 0 -- "-$g" 2>/dev/null; do
	i=$((i+1)); [ $i -le $polls ] || { echo alive; exit 0; }
	pause
done
echo gone`, pgid, h.id, groupWaitPolls)
}

// stopGroup runs stopGroupScript from a new session (as root too when
// the command ran with Sudo) and reads what it printed. An error means
// the script could not run to its end: nothing is known of the group.
func (h *Handle) stopGroup(pgid int, sudo bool) (groupStopped, error) {
	// Its own deadline: it runs after the caller's ctx ended, too. Long
	// enough for a redial and the script's wait.
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), stoppingKey{}, true), 20*time.Second)
	defer cancel()
	k := h.stopGroupScript(pgid)
	if sudo {
		k = fmt.Sprintf(`if [ "$(id -u)" = 0 ]; then %[1]s
else sudo -n sh -c %[2]s; fi`, k, shell.Quote(k))
	}
	out := &execout.Capped{N: 64 << 10}
	code, _, err := h.run(ctx, k, sandbox.ExecOptions{Dir: "/"}, out, io.Discard)
	if err != nil {
		return groupStopped{}, err
	}
	var st groupStopped
	ended := false
	for line := range strings.Lines(out.String()) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "proc "):
			if d := describeProc(strings.TrimPrefix(line, "proc ")); d != "" {
				st.Killed = append(st.Killed, d)
			}
		case line == "gone":
			st.Gone, ended = true, true
		case line == "alive":
			ended = true
		}
	}
	if !ended {
		return st, fmt.Errorf("stopping process group %s: the stop command exited %d without a verdict", strconv.Itoa(pgid), code)
	}
	return st, nil
}

// How long stopAfterLoss keeps trying to reach the sandbox (a network
// that is down for a while) before it gives up: after a lost connection,
// and, shorter, after a cancel (the caller is on its way out).
var (
	lossWindow   = 30 * time.Second
	cancelWindow = 5 * time.Second
)

// stopAfterLoss stops the group of a command whose outcome is unknown (a
// cancel, a lost connection). It returns nil when the group is gone,
// else an error that wraps sandbox.ErrStillRunning. While the sandbox
// cannot be reached it tries again, for up to window: a network that
// comes back soon should not cost the sandbox.
func (h *Handle) stopAfterLoss(pid *pidCatcher, sudo bool, window time.Duration) error {
	select {
	case <-pid.found:
	case <-time.After(2 * time.Second):
		return nil // the wrapper never started; closing the session is enough
	}
	deadline := time.Now().Add(window)
	var st groupStopped
	var err error
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 4*time.Second) {
		if st, err = h.stopGroup(pid.pid, sudo); err == nil || time.Now().Add(wait).After(deadline) {
			break
		}
		time.Sleep(wait)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%w: moat could not reach the sandbox to stop them (%v)", sandbox.ErrStillRunning, err)
	case !st.Gone:
		return fmt.Errorf("%w: they outlived SIGKILL: %s", sandbox.ErrStillRunning, strings.Join(st.Killed, "; "))
	}
	return nil
}

// stopLeft kills what is left of the group of a command whose own
// process has exited, and returns what it killed. An error wraps
// sandbox.ErrStillRunning.
func (h *Handle) stopLeft(pid *pidCatcher, sudo bool) ([]string, error) {
	select {
	case <-pid.found:
	default:
		return nil, nil // the wrapper never reported: it never ran the command
	}
	st, err := h.stopGroup(pid.pid, sudo)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: the command exited, and moat could not reach the sandbox to stop what it left running (%v)", sandbox.ErrStillRunning, err)
	case !st.Gone:
		return st.Killed, fmt.Errorf("%w: the command exited, and what it left running outlived SIGKILL: %s", sandbox.ErrStillRunning, strings.Join(st.Killed, "; "))
	}
	return st.Killed, nil
}

// describeProc turns "PID ARGS" into what a warning shows: the PID and
// the start of the command line. A subshell the command forked carries
// the wrapper's command line, which says nothing: it is named as such.
// A process with no command line left was already ending: "".
func describeProc(line string) string {
	pid, args, _ := strings.Cut(strings.TrimSpace(line), " ")
	args = strings.TrimSpace(args)
	switch {
	case args == "":
		return ""
	case strings.Contains(args, pidReport):
		return pid + " sh (a subshell of the command)"
	}
	return pid + " " + sandbox.ShortCommand(args)
}
