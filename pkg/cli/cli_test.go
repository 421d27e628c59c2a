package cli

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lwr-go/lwr/pkg/experiment"
	"github.com/lwr-go/lwr/pkg/train"
)

// chdir changes the working folder for the rest of the test (testing.Chdir
// needs Go 1.24; the module says 1.23).
func chdir(t *testing.T, dir string) {
	t.Helper()
	old, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(old) })
}

var commands = []Command{
	{Name: "cifar", Defaults: train.DefaultConfig, Bind: BindFlags, Presets: experiment.Presets()},
	{Name: "imagenet", Defaults: train.ImageNetConfig, Bind: BindImageNetFlags, Presets: experiment.ImageNetPresets()},
}

// TestPresetFoldersDistinct: every row of every preset of both commands
// has a folder of its own (case 1 of RELIABILITY.md: 14 presets once
// shared runs/100-balanced-softmax), and --preset X --out DIR puts each
// row in DIR/<row> (case 3: the demo's three runs once shared DIR).
func TestPresetFoldersDistinct(t *testing.T) {
	chdir(t, t.TempDir()) // CheckOut looks at runs/ here: nothing there
	owner := map[string]string{}
	for _, cmd := range commands {
		for _, p := range cmd.Presets {
			for _, extra := range [][]string{nil, {"--out", "mine"}} {
				plan, err := cmd.Configs(append([]string{"--preset", p.Name}, extra...))
				if err != nil {
					t.Fatalf("%s --preset %s %v: %v", cmd.Name, p.Name, extra, err)
				}
				seeds := max(1, len(p.Seeds))
				if len(plan.Configs) != len(plan.Labels) || len(plan.Configs) != seeds*len(p.Runs) {
					t.Fatalf("%s: %d configs for %d runs × %d seeds", p.Name, len(plan.Configs), len(p.Runs), seeds)
				}
				for i, c := range plan.Configs {
					who := cmd.Name + " " + p.Name + "/" + plan.Labels[i] + " " + strings.Join(extra, " ")
					want := "mine"
					if p.Table {
						want = filepath.Join("mine", p.Name, filepath.Base(filepath.Dir(c.Out)))
					}
					if extra != nil && filepath.Dir(c.Out) != want {
						t.Errorf("%s: folder %s, want %s/…", who, c.Out, want)
					}
					if prev, ok := owner[c.Out]; ok {
						t.Errorf("%s and %s share %s", prev, who, c.Out)
					}
					owner[c.Out] = who
				}
			}
		}
	}
	if len(owner) < 100 {
		t.Errorf("only %d folders: presets missing?", len(owner))
	}
}

// TestScheduleFollowsEpochs (case 4): milestones and the DRW/IB switch
// epochs written for 200 epochs scale with --epochs unless given; one that
// does not fit is refused naming its flag.
func TestScheduleFollowsEpochs(t *testing.T) {
	chdir(t, t.TempDir())
	cmd := commands[0]
	cases := []struct {
		args       []string
		milestones []int
		drw, ib    int
		warmup     int
		err        string
	}{
		{args: nil, milestones: []int{140, 170}, drw: 160, ib: 100, warmup: 5},
		{args: []string{"--loss", "ce-drw", "--epochs", "50"}, milestones: []int{35, 42}, drw: 40, ib: 25, warmup: 5},
		{args: []string{"--loss", "ib", "--epochs", "2"}, milestones: []int{1, 1}, drw: 1, ib: 1, warmup: 1},
		{args: []string{"--epochs", "1"}, milestones: nil, drw: 0, ib: 0, warmup: 0},
		{args: []string{"--epochs", "50", "--milestones", "30"}, milestones: []int{30}, drw: 40, ib: 25, warmup: 5},
		{args: []string{"--loss", "ce-drw", "--epochs", "50", "--drw-epoch", "60"}, err: "--drw-epoch 60: want below --epochs 50"},
		{args: []string{"--loss", "ib", "--epochs", "10", "--ib-epoch", "10"}, err: "--ib-epoch 10: want below --epochs 10"},
		{args: []string{"--epochs", "50", "--milestones", "40,60"}, err: "--milestones [40 60]: want epochs in 0..49"},
		{args: []string{"--epochs", "4", "--warmup", "4"}, err: "--warmup 4: want fewer than --epochs 4"},
		{args: []string{"--preset", "demo", "--epochs", "40"}, milestones: []int{28, 34}, drw: 32, ib: 20, warmup: 2},
	}
	for _, k := range cases {
		t.Run(strings.Join(k.args, " "), func(t *testing.T) {
			plan, err := cmd.Configs(k.args)
			if k.err != "" {
				if err == nil || !strings.Contains(err.Error(), k.err) {
					t.Fatalf("err = %v, want one containing %q", err, k.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := plan.Configs[0]
			if !slices.Equal(c.Milestones, k.milestones) || c.Loss.DRWEpoch != k.drw || c.Loss.IBEpoch != k.ib || c.Warmup != k.warmup {
				t.Errorf("milestones %v, DRW %d, IB %d, warm-up %d; want %v, %d, %d, %d",
					c.Milestones, c.Loss.DRWEpoch, c.Loss.IBEpoch, c.Warmup, k.milestones, k.drw, k.ib, k.warmup)
			}
		})
	}
}

// TestResumePreset: --resume of a preset continues it: runs with a
// checkpoint resume, runs it had not reached start; a single run with
// nothing to resume is refused.
func TestResumePreset(t *testing.T) {
	chdir(t, t.TempDir())
	cmd := commands[0]
	plan, err := cmd.Configs([]string{"--preset", "demo"})
	if err != nil {
		t.Fatal(err)
	}
	configs := plan.Configs
	// The first run got as far as its config (killed in its first epoch).
	if err := os.MkdirAll(configs[0].Out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configs[0].Out, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, err = cmd.Configs([]string{"--preset", "demo", "--resume"})
	if err != nil {
		t.Fatal(err)
	}
	configs = plan.Configs
	if got := []bool{configs[0].Resume, configs[1].Resume, configs[2].Resume}; !slices.Equal(got, []bool{true, false, false}) {
		t.Errorf("resume flags %v, want [true false false]", got)
	}
	if _, err := cmd.Configs([]string{"--resume", "--out", "nothing-here"}); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Errorf("single run: err = %v, want nothing to resume", err)
	}
}

// TestFlagsOnEveryRow: the flags, parsed once, are set on every row of a
// preset over the row's own settings, whatever their type (a float that
// does not print short, a list, a bool, a string), and a row keeps what
// the flags leave alone.
func TestFlagsOnEveryRow(t *testing.T) {
	chdir(t, t.TempDir())
	cmd := commands[0]
	plan, err := cmd.Configs([]string{"--preset", "table4", "--seeds", "0", "--lr", "0.0123456789012345", "--milestones", "3,5",
		"--epochs", "7", "--augment=false", "--sampler", "sqrt", "--out", "o"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := experiment.FindPreset(cmd.Presets, "table4")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Configs) != len(p.Runs) {
		t.Fatalf("%d runs, want the %d rows", len(plan.Configs), len(p.Runs))
	}
	thetas := map[float64]bool{}
	for i, c := range plan.Configs {
		if c.LR != 0.0123456789012345 || !slices.Equal(c.Milestones, []int{3, 5}) || c.Epochs != 7 || c.Augment || c.Sampler != "sqrt" {
			t.Errorf("row %s: lr %v milestones %v epochs %d augment %v sampler %s", plan.Labels[i], c.LR, c.Milestones, c.Epochs, c.Augment, c.Sampler)
		}
		thetas[c.LWRConfig.Theta] = true
	}
	if len(thetas) < 2 {
		t.Errorf("every row has θ %v: the rows' own settings were lost", thetas)
	}
}

// TestPaperOnlyBesideItsRecipe (issue 27): the paper's top-1 stands beside
// a table's row only when the row runs the paper's recipe (seeds and the
// data folder aside): `--preset table4 --dataset synthetic` printed
// "paper 46.3, diff −36.3".
func TestPaperOnlyBesideItsRecipe(t *testing.T) {
	chdir(t, t.TempDir())
	for _, tc := range []struct {
		args  []string
		paper bool
	}{
		{[]string{"--preset", "table4"}, true},
		{[]string{"--preset", "table4", "--data-dir", "/data/cifar", "--seeds", "0,1"}, true},
		{[]string{"--preset", "table4", "--dataset", "synthetic"}, false},
		{[]string{"--preset", "table4", "--epochs", "20"}, false},
		{[]string{"--preset", "table4", "--imb-factor", "50"}, false},
		{[]string{"--preset", "table4", "--lr", "0.05"}, false},
	} {
		plan, err := commands[0].Configs(tc.args)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		row := plan.Table.Rows[1] // BS + LWR, 50.7 in the paper
		if row.Label != "BS + LWR" || math.IsNaN(row.Paper) == tc.paper {
			t.Errorf("%v: row %q paper %v, want the paper's figure %v", tc.args, row.Label, row.Paper, tc.paper)
		}
	}
}
