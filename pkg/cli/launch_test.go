package cli

import (
	"slices"
	"testing"
)

func TestWithoutFlag(t *testing.T) {
	for _, c := range []struct {
		in, want []string
		threads  bool
	}{
		{[]string{"--nproc-per-node", "2", "--epochs", "3"}, []string{"--epochs", "3"}, false},
		{[]string{"--epochs=3", "--nproc-per-node=4", "--threads", "1"}, []string{"--epochs=3", "--threads", "1"}, true},
		{[]string{"--threads=2"}, []string{"--threads=2"}, true},
		{[]string{"--nproc-per-node-x", "1"}, []string{"--nproc-per-node-x", "1"}, false},
	} {
		got := withoutFlag(c.in, "nproc-per-node")
		if !slices.Equal(got, c.want) {
			t.Errorf("withoutFlag(%q) = %q, want %q", c.in, got, c.want)
		}
		if hasFlag(got, "threads") != c.threads {
			t.Errorf("hasFlag(%q, threads) = %v", got, !c.threads)
		}
	}
}
