package execout

import (
	"slices"
	"strings"
	"testing"

	"github.com/moatdev/moat/sandbox"
)

func TestLinesAcrossWrites(t *testing.T) {
	var lines []string
	out, _ := NewPair(sandbox.ExecOptions{OnLine: func(l string) { lines = append(lines, l) }})
	for _, w := range []string{"ab", "c\nde", "f\r\n\n", "g"} {
		out.Write([]byte(w))
	}
	if want := []string{"abc", "def", ""}; !slices.Equal(lines, want) {
		t.Fatalf("before Flush: %q, want %q", lines, want)
	}
	out.Flush()
	if want := []string{"abc", "def", "", "g"}; !slices.Equal(lines, want) {
		t.Fatalf("after Flush: %q, want %q", lines, want)
	}
	if got := out.String(); got != "abc\ndef\r\n\ng" {
		t.Fatalf("tail %q", got)
	}
}

func TestLongLineIsSplit(t *testing.T) {
	var lens []int
	out, _ := NewPair(sandbox.ExecOptions{OnLine: func(l string) { lens = append(lens, len(l)) }})
	long := strings.Repeat("x", sandbox.MaxLineBytes*2+10)
	for i := 0; i < len(long); i += 1000 {
		out.Write([]byte(long[i:min(i+1000, len(long))]))
	}
	out.Write([]byte("\n"))
	if want := []int{sandbox.MaxLineBytes, sandbox.MaxLineBytes, 10}; !slices.Equal(lens, want) {
		t.Fatalf("piece lengths %v, want %v", lens, want)
	}
}

// A line of exactly MaxLineBytes arrives whole however it was written.
func TestLineOfMaxLength(t *testing.T) {
	line := strings.Repeat("z", sandbox.MaxLineBytes)
	for _, writes := range [][]string{{line + "\n"}, {line, "\n"}} {
		var lens []int
		out, _ := NewPair(sandbox.ExecOptions{OnLine: func(l string) { lens = append(lens, len(l)) }})
		for _, w := range writes {
			out.Write([]byte(w))
		}
		out.Flush()
		if !slices.Equal(lens, []int{sandbox.MaxLineBytes}) {
			t.Errorf("%d writes: lines of %v bytes, want one of %d", len(writes), lens, sandbox.MaxLineBytes)
		}
	}
}

func TestStopEndsCallbacks(t *testing.T) {
	var lines []string
	out, _ := NewPair(sandbox.ExecOptions{OnLine: func(l string) { lines = append(lines, l) }})
	out.Write([]byte("before\npartial"))
	out.Stop()
	out.Write([]byte("\nafter\n"))
	out.Flush()
	if !slices.Equal(lines, []string{"before"}) || !strings.HasSuffix(out.String(), "after\n") {
		t.Fatalf("lines %q tail %q", lines, out.String())
	}
}

func TestTailIsBounded(t *testing.T) {
	out, _ := NewPair(sandbox.ExecOptions{})
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
	for i := 0; i < 100; i++ {
		out.Write(chunk)
		if c := cap(out.tail.buf); c > 3*sandbox.TailBytes {
			t.Fatalf("tail buffer grew to %d bytes", c)
		}
	}
	out.Write([]byte("END"))
	got := out.String()
	if len(got) != sandbox.TailBytes || !strings.HasSuffix(got, "cdefEND") {
		t.Fatalf("tail has %d bytes ending %q", len(got), got[len(got)-7:])
	}
	big := []byte(strings.Repeat("y", 3*sandbox.TailBytes) + "Z")
	out.Write(big)
	if got := out.String(); len(got) != sandbox.TailBytes || !strings.HasSuffix(got, "yZ") {
		t.Fatalf("after one huge write: %d bytes", len(got))
	}
}
