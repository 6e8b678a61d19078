// Package hostview says which parts of the host a bubblewrap sandbox sees:
// the system directories a build needs, read-only, without the files that
// hold the host's secrets, and the toolchains on PATH. Everything else
// (homes, /root, /run, /var, /tmp, /proc and /dev of the host) is left out,
// for the sandbox to provide its own.
package hostview

import (
	"os"
	"path/filepath"
	"strings"
)

// systemDirs are bound read-only where they exist (as the symbolic links
// they are on merged-/usr systems).
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}

// SecretPaths are hidden inside the sandbox where they exist: an empty
// directory or an empty file in their place.
var SecretPaths = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/sudoers", "/etc/sudoers.d", "/etc/ssl/private", "/etc/ssh",
}

// BwrapArgs are the bwrap options that bind the system directories and the
// directories of path (a PATH list) outside them read-only, and hide
// SecretPaths. They mount nothing else: the caller adds its own /dev,
// /proc, /tmp and home.
func BwrapArgs(path string) []string {
	var a []string
	for _, d := range systemDirs {
		if fi, err := os.Lstat(d); err == nil {
			if fi.Mode()&os.ModeSymlink != 0 {
				if t, err := os.Readlink(d); err == nil {
					a = append(a, "--symlink", t, d)
				}
				continue
			}
			a = append(a, "--ro-bind", d, d)
		}
	}
	for _, s := range SecretPaths {
		fi, err := os.Lstat(s)
		switch {
		case err != nil:
		case fi.IsDir():
			a = append(a, "--tmpfs", s)
		default:
			a = append(a, "--ro-bind", "/dev/null", s)
		}
	}
	for _, d := range Toolchains(path) {
		a = append(a, "--ro-bind", d, d)
	}
	return a
}

// Toolchains are the directories of path (a PATH list) outside the system
// directories that exist.
func Toolchains(path string) []string {
	var dirs []string
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) || underSystem(d) {
			continue
		}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	return dirs
}

// Visible reports whether the clean absolute path p is inside what
// BwrapArgs(path) shows, and not one of SecretPaths or under them.
func Visible(p, path string) bool {
	for _, s := range SecretPaths {
		if under(p, s) {
			return false
		}
	}
	for _, d := range systemDirs {
		if under(p, d) {
			return true
		}
	}
	for _, d := range Toolchains(path) {
		if under(p, d) {
			return true
		}
	}
	return false
}

func underSystem(d string) bool {
	for _, s := range []string{"/usr", "/bin", "/sbin", "/lib", "/opt", "/etc"} {
		if under(d, s) {
			return true
		}
	}
	return false
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
