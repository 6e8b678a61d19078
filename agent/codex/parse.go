package codex

import (
	"encoding/json"
	"strings"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/stream"
)

// Parser turns the lines codex exec --json writes into events:
//
//   - thread.started: EventSessionID (thread_id).
//   - item.completed with an agent_message: EventText and EventResult, both
//     with its text (the last message is the answer).
//   - the first item.started or item.completed of a tool item: EventToolCall.
//     command_execution is Bash(command, without the "/bin/bash -lc '…'"
//     wrapper codex puts around it), file_change is Edit(the paths,
//     comma-separated), web_search is WebSearch(query), mcp_tool_call is
//     mcp__<server>__<tool> (Claude Code's naming for MCP tools).
//   - turn.completed: EventUsage from its usage; cached input tokens are
//     reported as cache reads and left out of the input tokens.
//   - turn.failed and error: EventError with the message.
//
// Anything else (reasoning, to-do lists, non-fatal error items, lines that
// are not JSON objects) gives no events. A Parser is for one invocation; it
// is not safe for concurrent use.
type Parser struct {
	seen map[string]bool // tool items reported and not yet completed, by id
}

type event struct {
	Type     string          `json:"type"`
	ThreadID string          `json:"thread_id"`
	Item     json.RawMessage `json:"item"`
	Usage    json.RawMessage `json:"usage"`
}

type item struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Text    string `json:"text"`
	Command string `json:"command"`
	Query   string `json:"query"`
	Server  string `json:"server"`
	Tool    string `json:"tool"`
	Changes []struct {
		Path string `json:"path"`
	} `json:"changes"`
}

type usage struct {
	InputTokens       int `json:"input_tokens"`
	CachedInputTokens int `json:"cached_input_tokens"`
	OutputTokens      int `json:"output_tokens"`
}

// Parse returns the events of one stdout line.
func (p *Parser) Parse(line string) []agent.Event {
	obj, ok := stream.Object(line)
	if !ok {
		return nil
	}
	var ev event
	if json.Unmarshal(obj, &ev) != nil {
		return nil
	}
	switch ev.Type {
	case "thread.started":
		if ev.ThreadID != "" {
			return []agent.Event{{Kind: agent.EventSessionID, SessionID: ev.ThreadID}}
		}
	case "item.started", "item.completed":
		var it item
		if json.Unmarshal(ev.Item, &it) != nil {
			return nil
		}
		return p.item(it, ev.Type == "item.completed")
	case "turn.completed":
		var u usage
		if json.Unmarshal(ev.Usage, &u) != nil || strings.TrimSpace(string(ev.Usage)) == "null" {
			return nil
		}
		return []agent.Event{{Kind: agent.EventUsage, Usage: &agent.Usage{
			InputTokens:          max(u.InputTokens-u.CachedInputTokens, 0),
			CacheReadInputTokens: u.CachedInputTokens,
			OutputTokens:         u.OutputTokens,
		}}}
	case "turn.failed":
		return []agent.Event{{Kind: agent.EventError, Text: errorText(obj, "Codex: the turn failed")}}
	case "error":
		return []agent.Event{{Kind: agent.EventError, Text: errorText(obj, "Codex reported an error")}}
	}
	return nil
}

func errorText(obj []byte, fallback string) string {
	if msg := stream.ErrorMessage(obj); msg != "" {
		return msg
	}
	return fallback
}

func (p *Parser) item(it item, completed bool) []agent.Event {
	if it.Type == "agent_message" {
		if !completed {
			return nil
		}
		if it.Text == "" {
			return []agent.Event{{Kind: agent.EventResult}}
		}
		return []agent.Event{
			{Kind: agent.EventText, Text: it.Text},
			{Kind: agent.EventResult, Text: it.Text},
		}
	}
	var tool, arg string
	switch it.Type {
	case "command_execution":
		tool, arg = "Bash", unwrapShell(it.Command)
	case "file_change":
		tool = "Edit"
		var paths []string
		for _, c := range it.Changes {
			if c.Path != "" {
				paths = append(paths, c.Path)
			}
		}
		arg = strings.Join(paths, ", ")
	case "web_search":
		tool, arg = "WebSearch", it.Query
		if !completed && arg == "" {
			return nil // the query comes with the completion
		}
	case "mcp_tool_call":
		tool = "mcp__" + it.Server + "__" + it.Tool
	default:
		return nil
	}
	call := []agent.Event{{Kind: agent.EventToolCall, Tool: tool, ToolArg: arg}}
	if it.ID == "" {
		// Without an id the start and the completion cannot be matched:
		// report starts, and file changes, which may come only completed.
		if !completed || it.Type == "file_change" {
			return call
		}
		return nil
	}
	if p.seen[it.ID] {
		if completed {
			delete(p.seen, it.ID)
		}
		return nil
	}
	if !completed {
		if p.seen == nil {
			p.seen = map[string]bool{}
		}
		p.seen[it.ID] = true
	}
	return call
}

// unwrapShell returns the script of a command of the form
// "[/usr]/bin/bash -lc 'script'" (or sh, zsh, -c, a double-quoted script
// without expansions), which is how codex reports the commands it runs;
// other commands come back unchanged.
func unwrapShell(cmd string) string {
	rest := cmd
	for _, dir := range []string{"/usr/bin/", "/bin/"} {
		if strings.HasPrefix(rest, dir) {
			rest = rest[len(dir):]
			break
		}
	}
	shell, rest, ok := strings.Cut(rest, " ")
	if !ok || shell != "bash" && shell != "sh" && shell != "zsh" {
		return cmd
	}
	flag, word, ok := strings.Cut(rest, " ")
	if !ok || flag != "-lc" && flag != "-c" || len(word) < 2 {
		return cmd
	}
	switch q := word[0]; {
	case q == '\'' && word[len(word)-1] == '\'':
		// 'a'\''b' is a'b; any other quote ends the word early.
		script := strings.ReplaceAll(word[1:len(word)-1], `'\''`, "\x00")
		if strings.Contains(script, "'") {
			return cmd
		}
		return strings.ReplaceAll(script, "\x00", "'")
	case q == '"' && word[len(word)-1] == '"':
		script := word[1 : len(word)-1]
		if strings.ContainsAny(script, "\"\\$`") {
			return cmd
		}
		return script
	}
	return cmd
}
