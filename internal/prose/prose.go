// Package prose writes lists the way a sentence does, for help texts and
// error messages.
package prose

import "strings"

// OneOf joins items as prose: "a", "a or b", "a, b or c".
func OneOf(items []string) string {
	switch len(items) {
	case 0:
		return "nothing (none is registered)"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
