package exedevtest

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Texts of exe.dev's lobby, word for word (reference/exedev.md §1.3, §4.3).
const (
	msgInvalidName  = "Invalid VM name. Must be 5-63 characters: start with a lowercase letter, then lowercase letters or digits, with optional single hyphen separators (e.g., a-vm-name)."
	msgQuota        = "You have reached the maximum number of VMs allowed on your plan."
	msgRegistration = "Please complete registration by running: ssh exe.dev\r\n"
	msgNoSFTP       = "scp/sftp is not supported on the exe.dev server.\n"
)

var (
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	digitSuffix = regexp.MustCompile(`-[0-9]+$`)
	tagRE       = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
)

// reservedNames are refused as "not available" (reference §4.3).
var reservedNames = map[string]bool{
	"admin": true, "proxy": true, "shell": true, "sandbox": true, "hello": true,
	"test-user": true, "exedev": true, "shelley": true, "docker": true,
	"whoami": true, "job": true, "hire": true, "work": true,
}

func msgNotAvailable(name string) string { return fmt.Sprintf("VM name %q is not available", name) }
func msgNotFound(name string) string     { return fmt.Sprintf("VM %q not found", name) }

func msgNameIsUser(name string) string {
	return fmt.Sprintf("New VM name cannot match SSH username. To create a VM named %s, ssh into this REPL with a different username and try again. If you do this, you will have to use a username other than %s to log in to the REPL going forward.", name, name)
}

func msgDiskCeiling(gib int) string {
	return fmt.Sprintf("--disk cannot exceed %d GiB — contact support@exe.dev if you need more", gib)
}

// validName reports whether name follows exe.dev's naming rules, including
// the empirically observed refusal of a trailing -<digits>.
func validName(name string) bool {
	return len(name) >= 5 && len(name) <= 63 && nameRE.MatchString(name) && !digitSuffix.MatchString(name)
}

var nameWords1 = []string{
	"amber", "brisk", "cedar", "clever", "coral", "dusky", "eager", "fern",
	"frosty", "gentle", "golden", "hazel", "jolly", "lively", "lunar", "maple",
	"mellow", "misty", "nimble", "olive", "plucky", "quiet", "rapid", "rusty",
	"silver", "snowy", "sunny", "swift", "tidal", "velvet", "witty", "zesty",
}

var nameWords2 = []string{
	"badger", "beacon", "bison", "canyon", "comet", "dune", "falcon", "fjord",
	"gecko", "glacier", "harbor", "heron", "island", "koala", "lagoon", "lynx",
	"meadow", "otter", "panda", "pebble", "quokka", "raven", "ridge", "river",
	"summit", "tundra", "walrus", "willow", "yak", "zebra", "orchid", "tapir",
}

func pick(words []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
	if err != nil {
		return words[0]
	}
	return words[n.Int64()]
}

// randomName makes a two-word name; free reports whether a name may be used.
func randomName(free func(string) bool) string {
	for i := 0; ; i++ {
		name := pick(nameWords1) + "-" + pick(nameWords2)
		if i > 50 {
			name += "-x" + strconv.Itoa(i)
		}
		if validName(name) && free(name) {
			return name
		}
	}
}

// parseSize reads a memory or disk size: "20", "20G", "20GB", "20GiB",
// "512M", "512MB". A bare number is GiB. It returns bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1 << 30)
	for _, suf := range []struct {
		s string
		m int64
	}{{"GIB", 1 << 30}, {"GB", 1 << 30}, {"G", 1 << 30}, {"MIB", 1 << 20}, {"MB", 1 << 20}, {"M", 1 << 20}, {"TB", 1 << 40}, {"T", 1 << 40}} {
		if strings.HasSuffix(t, suf.s) {
			t, mult = strings.TrimSuffix(t, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 || t == "" {
		return 0, fmt.Errorf("invalid size: %q", s)
	}
	return int64(n * float64(mult)), nil
}

// displayImage is the image as exe.dev shows it: no registry host, no
// ":latest".
func displayImage(ref string) string {
	if i := strings.IndexByte(ref, '/'); i > 0 {
		first := ref[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			ref = ref[i+1:]
		}
	}
	return strings.TrimSuffix(ref, ":latest")
}
