#!/bin/sh
# A fake Gemini CLI for moat's end-to-end tests: it reads its prompt from
# stdin, as headless gemini does, writes it to PROMPT.txt, commits that,
# and prints the stream-json gemini would, telling its arguments in a
# text.
set -u
case "${1:-}" in --version|-v) echo "0.61.0"; exit 0 ;; esac
prompt=$(cat)
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
echo '{"type":"init","timestamp":"2026-12-07T23:38:55.231Z","session_id":"fake-gemini-session","model":"gemini-2.5-flash"}'
printf '{"type":"message","role":"user","content":"%s\\n"}\n' "$(esc "$prompt")"
echo 'Loaded cached credentials.'
printf '{"type":"message","role":"assistant","content":"args: ","delta":true}\n'
printf '{"type":"message","role":"assistant","content":"%s","delta":true}\n' "$(esc "$*")"
printf '%s\n' "$prompt" > PROMPT.txt
echo '{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t1","parameters":{"command":"git commit -m note"}}'
git add PROMPT.txt && git commit -q -m "gemini: note the prompt"
echo '{"type":"tool_result","tool_id":"t1","status":"success","output":""}'
echo '{"type":"message","role":"assistant","content":"done ","delta":true}'
echo '{"type":"message","role":"assistant","content":"<promise>COMPLETE</promise>","delta":true}'
echo '{"type":"result","status":"success","stats":{"total_tokens":127,"input_tokens":107,"output_tokens":20,"cached":7,"input":100,"duration_ms":5,"tool_calls":1}}'
echo '{"type":"result","status":"succ'
