package config

import (
	"slices"
	"strings"
	"testing"
)

func TestScheduleWeight(t *testing.T) {
	cases := []struct {
		s    Schedule
		t, T int
		want float64
		err  string
	}{
		{Quadratic, 0, 200, 1, ""},
		{Quadratic, 100, 200, 0.25, ""},
		{Quadratic, 199, 200, 0.000025, ""},
		{Constant, 150, 200, 1, ""},
		{Quadratic, 0, 0, 0, "0 epochs"},
		{"linear", 0, 10, 0, `"linear"`},
	}
	for _, c := range cases {
		got, err := c.s.Weight(c.t, c.T)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s.Weight(%d, %d): err %v, want one naming %s", c.s, c.t, c.T, err, c.err)
			}
			continue
		}
		if err != nil || got < c.want-1e-12 || got > c.want+1e-12 {
			t.Errorf("%s.Weight(%d, %d) = %v, %v; want %v", c.s, c.t, c.T, got, err, c.want)
		}
	}
}

// TestShortSchedule: a short run keeps the recipe's shape (milestones at
// 70% and 85%, DRW at 80%, IB at half, warm-up 5% but 2 to 5 epochs and
// less than the run).
func TestShortSchedule(t *testing.T) {
	cases := []struct {
		e, warmup, drw, ib int
		milestones         []int
	}{
		{200, 5, 160, 100, []int{140, 170}},
		{20, 2, 16, 10, []int{14, 17}},
		{2, 1, 1, 1, []int{1, 1}},
	}
	for _, c := range cases {
		var r Run
		r.Warmup = 5
		ShortSchedule(&r, c.e)
		if r.Epochs != c.e || r.Warmup != c.warmup || r.Loss.DRWEpoch != c.drw || r.Loss.IBEpoch != c.ib || !slices.Equal(r.Milestones, c.milestones) {
			t.Errorf("ShortSchedule(%d): epochs %d warm-up %d DRW %d IB %d milestones %v", c.e, r.Epochs, r.Warmup, r.Loss.DRWEpoch, r.Loss.IBEpoch, r.Milestones)
		}
	}
}

// TestHashIgnoresWhereAndHow: settings that do not change a run's result
// (folder, device, threads, layout) leave its hash; the others change it
// and Diff names them.
func TestHashIgnoresWhereAndHow(t *testing.T) {
	a := Run{Dataset: "cifar100", LR: 0.1, Epochs: 200, Loss: DefaultLoss("balanced-softmax", 200), LWRConfig: DefaultLWR()}
	b := a
	b.Out, b.Device, b.Threads, b.MemoryFormat, b.Workers, b.ConvAlgorithm = "x", "cuda", 8, "blocked", 4, "direct"
	if a.Hash() != b.Hash() || len(a.Diff(b)) != 0 {
		t.Errorf("hash or diff moved with where and how a run trains: %v", a.Diff(b))
	}
	b.LWRConfig.Theta = 0.2
	if a.Hash() == b.Hash() || !slices.Equal(a.Diff(b), []string{"lwr_config.Theta: 0.4 → 0.2"}) {
		t.Errorf("θ 0.4 → 0.2: same hash %v, diff %q", a.Hash() == b.Hash(), a.Diff(b))
	}
}

// TestProvenanceChanges: a resume names what changed of the code, the
// libraries and the machine, not the command or the time; the settings
// hash ignores provenance.
func TestProvenanceChanges(t *testing.T) {
	a := Provenance{Revision: "abc", GoVersion: "go1.26", Libtorch: "1.13.0", Build: "cpu", Device: "cpu", CPU: "AMD EPYC", Threads: 2,
		Command: []string{"cifar"}, Host: "h", Start: "2026-12-06T10:00:00Z"}
	b := a
	b.Command, b.Start = []string{"cifar", "--resume"}, "2026-12-07T10:00:00Z"
	if got := a.Changes(b); len(got) != 0 {
		t.Errorf("command and time changed: %q, want nothing said", got)
	}
	a.Layout = "blocked16, auto convolutions"
	b.Modified, b.Libtorch, b.Build, b.Threads, b.Layout = true, "2.11.0", "cuda", 4, "channels-last"
	want := []string{"lwr: abc → abc (modified)", "libtorch: 1.13.0 cpu → 2.11.0 cuda", "threads: 2 → 4", "layout: blocked16, auto convolutions → channels-last"}
	if got := a.Changes(b); !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	r := Run{Dataset: "cifar100"}
	s := r
	s.Provenance = &a
	if r.Hash() != s.Hash() || len(r.Diff(s)) != 0 {
		t.Errorf("provenance moved the settings hash or diff: %v", r.Diff(s))
	}
}
