package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestTrust(t *testing.T) {
	s := Store{Path: filepath.Join(t.TempDir(), "cfg", FileName)}
	repo := "/work/repo"
	h1, h2 := Hash([]byte("a = 1\n")), Hash([]byte("a = 2\n"))
	if ok, err := s.Trusted(repo, h1); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := s.Trust(repo, h1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Trusted(repo, h1); !ok {
		t.Error("not trusted after Trust")
	}
	if ok, _ := s.Trusted(repo, h2); ok {
		t.Error("other content trusted")
	}
	if ok, _ := s.Trusted("/work/other", h1); ok {
		t.Error("same content trusted in another repository")
	}
	st, err := os.Stat(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := s.Trust(repo, h2); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Trusted(repo, h1); ok {
		t.Error("old content still trusted after the file changed and was trusted again")
	}
	if err := s.Forget(repo); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Trusted(repo, h2); ok {
		t.Error("trusted after Forget")
	}
	if err := s.Trust("relative", h1); err == nil {
		t.Error("relative repository path accepted")
	}
	entries, _ := os.ReadDir(filepath.Dir(s.Path))
	if len(entries) != 1 {
		t.Errorf("leftover files in the store's directory: %v", entries)
	}
}

func TestCorruptStore(t *testing.T) {
	s := Store{Path: filepath.Join(t.TempDir(), "trusted.json")}
	os.WriteFile(s.Path, []byte("not json"), 0o600)
	if ok, err := s.Trusted("/r", Hash(nil)); ok || err == nil {
		t.Errorf("corrupt store: %v %v", ok, err)
	}
}

// Writers at once lose none of each other's entries.
func TestConcurrentTrust(t *testing.T) {
	s := Store{Path: filepath.Join(t.TempDir(), FileName)}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Trust(fmt.Sprintf("/repo/%d", i), Hash([]byte{byte(i)})); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 8 {
		if ok, err := s.Trusted(fmt.Sprintf("/repo/%d", i), Hash([]byte{byte(i)})); !ok || err != nil {
			t.Errorf("repo %d lost: %v", i, err)
		}
	}
	if _, err := os.Stat(s.Path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
}
