package gitsync

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/moatdev/moat/internal/worktree/hostgit"
)

// git am reads commit messages out of e-mail text, which loses some of
// them: a body line "---" ends the message there, and leading "From:",
// "Date:" or "Subject:" lines in the body are taken as headers. So SyncOut
// also copies each commit's author and raw message out of the sandbox, and
// after git am rewrites the new host commits whose metadata differs (same
// trees, new commit objects; nothing else on the branch changes).

// metaFormat is the git log format of the metadata file: with -z, one
// NUL-terminated record per commit.
const metaFormat = "%H%n%an%n%ae%n%ad%n%cd%n%B"

// metaFile is the metadata file's name in the patch dir.
const metaFile = "commits.meta"

type commitMeta struct {
	SHA, Name, Email, AuthorDate, CommitterDate, Message string
}

func parseMeta(data string) []commitMeta {
	var ms []commitMeta
	for _, rec := range hostgit.SplitZ(data) {
		rec = strings.TrimPrefix(rec, "\n") // git log -z puts no newline, but be lenient
		f := strings.SplitN(rec, "\n", 6)
		if len(f) < 6 {
			continue
		}
		ms = append(ms, commitMeta{SHA: f[0], Name: f[1], Email: f[2], AuthorDate: f[3], CommitterDate: f[4], Message: f[5]})
	}
	return ms
}

// same compares what git am should have kept.
func (m commitMeta) same(n commitMeta) bool {
	return m.Name == n.Name && m.Email == n.Email && m.AuthorDate == n.AuthorDate &&
		strings.TrimRight(m.Message, "\n") == strings.TrimRight(n.Message, "\n")
}

// patchSHA returns the sandbox commit a format-patch file was made from.
func patchSHA(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	fs := strings.Fields(line)
	if err != nil || len(fs) < 2 || fs[0] != "From" {
		return "", fmt.Errorf("%s does not start with a format-patch From line", p)
	}
	return fs[1], nil
}

// restoreMetadata makes the commits git am made in before..after carry the
// sandbox commits' authors and messages exactly.
func (o *out) restoreMetadata(ctx context.Context, before, after string) error {
	data, err := os.ReadFile(o.dir + string(os.PathSeparator) + metaFile)
	if err != nil {
		return err
	}
	want := map[string]commitMeta{}
	for _, m := range parseMeta(string(data)) {
		want[m.SHA] = m
	}
	hostOut, err := o.git(ctx, o.wt, "log", "-z", "--reverse", "--no-use-mailmap", "--date=raw", "--format="+metaFormat, before+".."+after)
	if err != nil {
		return err
	}
	landed := parseMeta(hostOut)
	if len(landed) != len(o.patches) {
		return fmt.Errorf("git am made %d commits from %d patches", len(landed), len(o.patches))
	}
	wanted := make([]commitMeta, len(landed))
	first := -1
	for i, p := range o.patches {
		sha, err := patchSHA(p)
		if err != nil {
			return err
		}
		w, ok := want[sha]
		if !ok {
			return fmt.Errorf("no metadata for sandbox commit %s", sha)
		}
		wanted[i] = w
		if first < 0 && !w.same(landed[i]) {
			first = i
		}
	}
	if first < 0 {
		return nil
	}
	parent := before
	if first > 0 {
		parent = landed[first-1].SHA
	}
	for i := first; i < len(landed); i++ {
		w := wanted[i]
		tree, err := o.line(ctx, o.wt, "rev-parse", landed[i].SHA+"^{tree}")
		if err != nil {
			return err
		}
		msg := w.Message
		if !strings.HasSuffix(msg, "\n") {
			msg += "\n"
		}
		c := hostgit.Cmd{
			Dir:     o.wt,
			Args:    append(o.id.Args(), "commit-tree", tree, "-p", parent, "-F", "-"),
			Stdin:   strings.NewReader(msg),
			Timeout: o.timeout,
			Env: []string{
				"GIT_AUTHOR_NAME=" + w.Name, "GIT_AUTHOR_EMAIL=" + w.Email, "GIT_AUTHOR_DATE=" + w.AuthorDate,
				"GIT_COMMITTER_DATE=" + landed[i].CommitterDate,
			},
		}
		out, err := c.Run(ctx)
		if err != nil {
			return err
		}
		parent = strings.TrimSpace(out)
	}
	if _, err := o.git(ctx, o.wt, "update-ref", "-m", "moat sync-out: restore commit messages and authors", "HEAD", parent, after); err != nil {
		return err
	}
	o.log("sync-out: restored the messages or authors git am changed in %d commit(s)", len(landed)-first)
	return nil
}
