package gitsync

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// validRel reports whether p is a slash path that stays inside a working
// tree and names nothing git keeps to itself: not absolute, no "." or ".."
// component, no backslash or NUL, and no component that is .git on some
// file system (NTFS ignores trailing dots and spaces and knows ".git" as
// its short name "git~1"; HFS+ ignores some invisible characters, so
// ".g\u200cit" is .git there). Git refuses the same names in a tree.
func validRel(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, '\\') || strings.ContainsRune(p, 0) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." || isDotGit(c) {
			return false
		}
	}
	return filepath.IsLocal(filepath.FromSlash(p))
}

// hfsIgnored are the code points HFS+ leaves out when it compares names.
var hfsIgnored = strings.NewReplacer("\u200c", "", "\u200d", "", "\u200e", "", "\u200f", "",
	"\u202a", "", "\u202b", "", "\u202c", "", "\u202d", "", "\u202e", "",
	"\u206a", "", "\u206b", "", "\u206c", "", "\u206d", "", "\u206e", "", "\u206f", "", "\ufeff", "")

// isDotGit reports whether a path component names .git on some file
// system.
func isDotGit(c string) bool {
	c = strings.ToLower(hfsIgnored.Replace(c))
	c = strings.TrimRight(c, ". ")
	return c == ".git" || c == "git~1"
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
