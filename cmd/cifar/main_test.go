package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// TestRejectedBeforeWork: invalid flags fail at once with one line that
// names the flag; nothing is trained.
func TestRejectedBeforeWork(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--lwr-theta", "1.5"}, "--lwr-theta 1.5 is out of range: want -1 ≤ θ ≤ 1"},
		{[]string{"--lwr-tau", "0"}, "--lwr-tau 0 is out of range: want τ > 0"},
		{[]string{"--imb-factor", "0.5"}, "--imb-factor 0.5: want ≥ 1"},
		{[]string{"--loss", "hinge"}, `--loss: unknown loss "hinge"`},
		{[]string{"--preset", "table9"}, `--preset "table9": no such preset`},
		{[]string{"--preset", "table1-bs-lwr", "--lwr-tau", "-1"}, "--lwr-tau -1 is out of range"},
		{[]string{"--epochs", "ten"}, `invalid argument "ten" for "--epochs"`},
		{[]string{"--milestones", "140,x"}, `"x" is not an epoch number`},
		{[]string{"stray"}, `unexpected argument "stray"`},
		{[]string{"--seeds", "1,1"}, "--seeds: seed 1 given twice"}, // issue 26, case 11
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			err := run(c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// TestRejectedLeavesNoFolder (issue 26, cases 7 and 9): an infinite float
// flag or a thread count out of bounds is one line naming the flag, and
// the output folder is not created (it was, holding only .lock, when an
// infinite lr failed only at config.json).
func TestRejectedLeavesNoFolder(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--lr", "inf"}, "--lr +Inf: want a finite number"},
		{[]string{"--wd", "inf"}, "--wd +Inf: want a finite number"},
		{[]string{"--ib-alpha", "inf", "--loss", "ib"}, "--ib-alpha +Inf: want a finite number"},
		{[]string{"--threads", "1000"}, "--threads 1000: want 0 (every core) to"},
		{[]string{"--threads", "-1"}, "--threads -1: want 0 (every core) to"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			err := run(append(c.args, "--dataset", "synthetic", "--out", out))
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, c.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after the flags were refused (%v)", out, err)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	if err := run([]string{"--help"}); !errors.Is(err, pflag.ErrHelp) {
		t.Errorf("--help: err = %v, want pflag.ErrHelp", err)
	}
	if err := run([]string{"--list-presets"}); err != nil {
		t.Errorf("--list-presets: %v", err)
	}
}

// TestDeviceCUDAWithoutGPU: on a machine without CUDA, --device cuda fails
// with one clear line before training.
func TestDeviceCUDAWithoutGPU(t *testing.T) {
	if libtorch.CUDAAvailable() {
		t.Skip("this machine has CUDA")
	}
	err := run([]string{"--device", "cuda", "--dataset", "synthetic", "--epochs", "1", "--out", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--device: device cuda: libtorch sees no CUDA device") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
}
