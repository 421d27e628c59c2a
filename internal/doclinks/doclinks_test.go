package doclinks

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBroken(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docs", "a.md"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	src := "[ok](docs/a.md) [anchor](docs/a.md#part) [folder](docs) [web](https://x.org/y) [self](#top)\n" +
		"[gone](docs/b.md) ![img](pic.png)\n" +
		"`[code](nowhere.md)`\n" +
		"```\n[block](nowhere.md)\n```\n"
	got := Broken(dir, src)
	want := []string{"2: docs/b.md", "2: pic.png"}
	if !slices.Equal(got, want) {
		t.Errorf("Broken = %q, want %q", got, want)
	}
}

// TestRepositoryLinks: every relative link of lwr's Markdown files
// resolves.
func TestRepositoryLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "third_party", "runs", "data", ".gpu", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".md") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for _, bad := range Broken(filepath.Dir(path), string(b)) {
			t.Errorf("%s:%s: the link leads nowhere", path, bad)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("read %d Markdown files under %s, want lwr's documents", n, root)
	}
}
