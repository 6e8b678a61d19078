package moat

import (
	"fmt"
	"regexp"
	"strings"
)

var promptArg = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// CheckPrompt reports whether text expands with args: every {{KEY}} it
// uses has a value in args or is one of Run's built-ins (SOURCE_BRANCH,
// TARGET_BRANCH), which args may not set. Run makes the same check before
// it makes anything; a caller checks first to refuse bad input earlier.
func CheckPrompt(text string, args map[string]string) error {
	_, err := expandPrompt(text, args, map[string]string{"SOURCE_BRANCH": "", "TARGET_BRANCH": ""})
	return err
}

// expandPrompt replaces {{KEY}} from args and the built-ins, which args may
// not override. A key with no value is an error naming it.
func expandPrompt(text string, args, builtins map[string]string) (string, error) {
	for k := range args {
		if _, ok := builtins[k]; ok {
			return "", fmt.Errorf("moat: prompt argument %s is built in and cannot be set", k)
		}
	}
	var missing []string
	out := promptArg.ReplaceAllStringFunc(text, func(m string) string {
		key := promptArg.FindStringSubmatch(m)[1]
		if v, ok := builtins[key]; ok {
			return v
		}
		if v, ok := args[key]; ok {
			return v
		}
		missing = append(missing, key)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("moat: the prompt uses {{%s}} but no value was given (pass it as a prompt argument, e.g. --arg %s=...)", strings.Join(missing, "}}, {{"), missing[0])
	}
	return out, nil
}
