package main

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent"
)

// The `moat run --json` stream: one JSON object per line, each with "type"
// and "time" (RFC 3339, UTC, nanoseconds). Documented in docs/json.md; add
// fields freely, never rename or remove one.

// jsonEvent is every event before the result.
type jsonEvent struct {
	Type      string `json:"type"` // status, iteration_start, iteration_end, text, tool_call, stderr, warning
	Time      string `json:"time"`
	Iteration int    `json:"iteration,omitempty"` // 1-based; absent outside the agent loop
	Text      string `json:"text,omitempty"`
	Tool      string `json:"tool,omitempty"`     // tool_call: e.g. "Bash"
	ToolArg   string `json:"tool_arg,omitempty"` // tool_call: e.g. "npm test"
}

func jsonTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func jsonEventOf(e moat.Event) jsonEvent {
	return jsonEvent{Type: string(e.Kind), Time: jsonTime(e.Time), Iteration: e.Iteration, Text: e.Text, Tool: e.Tool, ToolArg: e.ToolArg}
}

// appendJSONEvent appends the line jsonEventOf(e) is in the stream: the
// bytes encoding/json writes for it (without HTML escaping) and a
// newline. By hand, as an agent's output may be a million events a
// second; TestJSONEventEncoding holds it to encoding/json.
func appendJSONEvent(b []byte, e moat.Event, tc *timeCache) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, string(e.Kind))
	b = append(b, `,"time":"`...)
	b = tc.append(b, e.Time)
	b = append(b, '"')
	if e.Iteration != 0 {
		b = append(b, `,"iteration":`...)
		b = strconv.AppendInt(b, int64(e.Iteration), 10)
	}
	if e.Text != "" {
		b = append(b, `,"text":`...)
		b = appendJSONString(b, e.Text)
	}
	if e.Tool != "" {
		b = append(b, `,"tool":`...)
		b = appendJSONString(b, e.Tool)
	}
	if e.ToolArg != "" {
		b = append(b, `,"tool_arg":`...)
		b = appendJSONString(b, e.ToolArg)
	}
	return append(b, "}\n"...)
}

// timeCache appends times as jsonTime formats them, formatting the date
// and time of day once per second: events come many to a second.
type timeCache struct {
	sec    int64
	prefix []byte // "2006-01-02T15:04:05" of sec
}

func (c *timeCache) append(b []byte, t time.Time) []byte {
	if s := t.Unix(); s != c.sec || c.prefix == nil {
		t = t.UTC()
		if y := t.Year(); y < 1000 || y > 9999 { // not four digits: as it comes
			c.prefix = nil
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		c.sec, c.prefix = s, t.AppendFormat(c.prefix[:0], "2006-01-02T15:04:05")
	}
	b = append(b, c.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		// RFC3339Nano: up to nine digits, trailing zeros dropped.
		var d [10]byte
		d[0] = '.'
		for i := 9; i >= 1; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return append(b, 'Z')
}

// Masks for looking at 8 bytes at a time: one in every byte, and every
// byte's high bit.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// word8 is the 8 bytes of s at i, little-endian (one load).
func word8(s string, i int) uint64 {
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does with SetEscapeHTML(false): quote, backslash and control characters;
// invalid UTF-8 as \ufffd; U+2028 and U+2029.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// 8 bytes at a time while none needs a look: no byte >= 0x80,
		// none < 0x20 (+0x60 leaves its high bit clear), no quote or
		// backslash (a zero byte after the xor).
		if i+8 <= len(s) {
			w := word8(s, i)
			q, bs := w^('"'*ones), w^('\\'*ones)
			if (w|^(w+0x60*ones)|((q-ones)&^q)|((bs-ones)&^bs))&highs == 0 {
				i += 8
				continue
			}
		}
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonResult is the last line of the stream.
type jsonResult struct {
	Type     string `json:"type"` // "result"
	Time     string `json:"time"`
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"` // what moat exits with
	// Error is the failure as moat prints it; ErrorKind classifies it:
	// idle_timeout, agent_failed, sync_out, merge_conflict, interrupted,
	// other.
	Error            string          `json:"error,omitempty"`
	ErrorKind        string          `json:"error_kind,omitempty"`
	DurationMS       int64           `json:"duration_ms"`
	Branch           string          `json:"branch,omitempty"`
	Commits          []jsonCommit    `json:"commits"`
	MergeCommit      *jsonCommit     `json:"merge_commit,omitempty"` // moat's own, when the branch had moved
	CompletionSignal string          `json:"completion_signal,omitempty"`
	Iterations       []jsonIteration `json:"iterations"`
	Usage            *agent.Usage    `json:"usage,omitempty"` // summed over iterations, when the agent reports it
	Phases           []jsonPhase     `json:"phases"`
	Kept             []jsonKept      `json:"kept"`
	LogFile          string          `json:"log_file,omitempty"`
}

type jsonCommit struct {
	SHA     string `json:"sha"`
	Subject string `json:"subject"`
}

type jsonIteration struct {
	ExitCode   int          `json:"exit_code"`
	DurationMS int64        `json:"duration_ms"`
	SessionID  string       `json:"session_id,omitempty"`
	Usage      *agent.Usage `json:"usage,omitempty"`
}

type jsonPhase struct {
	Name       string `json:"name"`
	DurationMS int64  `json:"duration_ms"`
}

type jsonKept struct {
	What   string `json:"what"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Fix    string `json:"fix,omitempty"`
}

func jsonResultOf(res *moat.RunResult, took time.Duration, runErr error) jsonResult {
	r := jsonResult{
		Type: "result", Time: jsonTime(time.Now()), OK: runErr == nil,
		DurationMS: took.Milliseconds(),
		Commits:    []jsonCommit{}, Iterations: []jsonIteration{}, Phases: []jsonPhase{}, Kept: []jsonKept{},
	}
	if runErr != nil {
		r.Error = errorText(runErr)
		r.ErrorKind = errorKind(runErr)
		switch r.ErrorKind {
		case "interrupted":
			r.ExitCode = exitInterrupted
		case "usage":
			r.ExitCode = exitUsage
		default:
			r.ExitCode = exitFailure
		}
	}
	if res == nil {
		return r
	}
	r.Branch, r.CompletionSignal, r.LogFile = res.Branch, res.CompletionSignal, res.LogFile
	for _, c := range res.Commits {
		r.Commits = append(r.Commits, jsonCommit{c.SHA, c.Subject})
	}
	if m := res.MergeCommit; m != nil {
		r.MergeCommit = &jsonCommit{m.SHA, m.Subject}
	}
	for _, it := range res.Iterations {
		r.Iterations = append(r.Iterations, jsonIteration{it.ExitCode, it.Duration.Milliseconds(), it.SessionID, it.Usage})
	}
	r.Usage = totalUsage(res)
	for _, ph := range res.Phases {
		r.Phases = append(r.Phases, jsonPhase{ph.Name, ph.Duration.Milliseconds()})
	}
	for _, k := range res.Kept {
		r.Kept = append(r.Kept, jsonKept{k.What, k.Path, k.Reason, k.Fix})
	}
	return r
}

func errorKind(err error) string {
	var ue *usageError
	switch {
	case errors.Is(err, moat.ErrIdleTimeout):
		return "idle_timeout"
	case errors.Is(err, moat.ErrAgentFailed):
		return "agent_failed"
	case errors.Is(err, moat.ErrSyncOut):
		return "sync_out"
	case errors.Is(err, moat.ErrMergeConflict):
		return "merge_conflict"
	case errors.Is(err, errInterrupted):
		return "interrupted"
	case errors.As(err, &ue):
		return "usage"
	}
	return "other"
}
