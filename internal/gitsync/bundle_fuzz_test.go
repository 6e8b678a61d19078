package gitsync

import (
	"bytes"
	"testing"
)

// FuzzReadBundleHeader: whatever a hostile sandbox sends as a bundle, the
// header parser neither panics nor takes a pack offset outside the data.
func FuzzReadBundleHeader(f *testing.F) {
	f.Add([]byte("# v2 git bundle\n-0123456789abcdef0123456789abcdef01234567 base\n0123456789abcdef0123456789abcdef01234567 HEAD\n\nPACK\x00\x00\x00\x02\x00\x00\x00\x03"))
	f.Add([]byte("# v3 git bundle\n@object-format=sha1\n0123456789abcdef0123456789abcdef01234567 HEAD\n\nPACK\x00\x00\x00\x02\xff\xff\xff\xff"))
	f.Add([]byte("# v3 git bundle\n@filter=blob:none\n\n"))
	f.Add([]byte("# v2 git bundle\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readBundleHeader(bytes.NewReader(data))
		if err != nil {
			return
		}
		if h.packAt < 0 || h.packAt+12 > int64(len(data)) || !bytes.Equal(data[h.packAt:h.packAt+4], []byte("PACK")) {
			t.Fatalf("accepted a header with its pack at %d of %d bytes", h.packAt, len(data))
		}
		for name, id := range h.refs {
			if name == "" || len(id) != 40 {
				t.Fatalf("ref %q → %q", name, id)
			}
		}
	})
}
