package train

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// TestVCSState: the revision of lwr's repository and its dirty flag: clean
// after a commit, modified by a change to a tracked file (not by an
// untracked one); nothing for another module's repository.
func TestVCSState(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=lwr", "-c", "user.email=lwr@localhost"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("go.mod", "module github.com/lwr-go/lwr\n\ngo 1.23\n")
	write("a.go", "package a\n")
	git("add", ".")
	git("commit", "-q", "-m", "x")
	head := git("rev-parse", "HEAD")
	sub := filepath.Join(dir, "pkg")
	os.Mkdir(sub, 0o755)
	for _, tc := range []struct {
		name     string
		change   func()
		rev      string
		modified bool
	}{
		{"clean", func() {}, head, false},
		{"untracked file", func() { write("new.go", "package a\n") }, head, false},
		{"tracked file changed", func() { write("a.go", "package a // changed\n") }, head, true},
		{"another module", func() { write("go.mod", "module example.com/other\n") }, "", false},
	} {
		tc.change()
		if rev, mod := vcsState(sub); rev != tc.rev || mod != tc.modified {
			t.Errorf("%s: revision %q modified %v, want %q %v", tc.name, rev, mod, tc.rev, tc.modified)
		}
	}
}

// TestProvenance (issue 27): config.json records where a run came from,
// as this process sees it.
func TestProvenance(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	c := tinyConfig(filepath.Join(t.TempDir(), "run"))
	c.Threads = 1
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Run(ctx, c, nil, StopAfter(2, cancel)); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	// Resumed with two threads: said, and the run keeps where it started.
	c.Threads, c.Resume = 2, true
	if _, err := Run(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(c.Out, TrainLog))
	if !strings.Contains(string(log), "resumed with another threads: 1 → 2\n") {
		t.Errorf("train.log does not say the threads changed:\n%s", log)
	}
	b, err := os.ReadFile(filepath.Join(c.Out, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var saved Config
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	p := saved.Provenance
	if p == nil {
		t.Fatalf("config.json has no provenance:\n%s", b)
	}
	wd, _ := os.Getwd()
	rev, modified := vcsState(wd)
	host, _ := os.Hostname()
	start, err := time.Parse(time.RFC3339, p.Start)
	if p.Revision != rev || p.Modified != modified || p.GoVersion != runtime.Version() || p.Libtorch != libtorch.Version() ||
		!strings.Contains(p.Libtorch, ".") || (p.Build != "cpu" && p.Build != "cuda") || p.Device != "cpu" || p.CPU == "" || (runtime.GOARCH == "amd64" && p.ISA == "") ||
		p.Threads < 1 || !slices.Equal(p.Command, os.Args) || p.Host != host || err != nil || time.Since(start) > time.Hour {
		t.Errorf("provenance %+v; want revision %q modified %v, %s, libtorch %s, this host and command, a start time", *p, rev, modified, runtime.Version(), libtorch.Version())
	}
	if p.Threads != 1 {
		t.Errorf("provenance threads %d, want the start's 1", p.Threads)
	}
	if want := c.layout(gotch.CPU); p.Layout != want || p.Layout == "" {
		t.Errorf("provenance layout %q, want %q", p.Layout, want)
	}
}
