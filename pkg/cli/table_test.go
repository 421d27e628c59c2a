package cli

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/experiment"
	"github.com/lwr-go/lwr/pkg/train"
)

// tinyTable is a table of two synthetic rows and one that fails (its data
// set is not on disk), 3 epochs each.
func tinyTable(missing string) Command {
	synthetic := func(loss string, withLWR bool) func(*config.Run) {
		return func(c *config.Run) {
			c.Dataset, c.Device, c.Threads, c.BatchSize, c.EvalEvery = "synthetic", "cpu", 1, 16, 1
			c.Loss.Name, c.LWR = loss, withLWR
			config.ShortSchedule(c, 3) // batch 16, 3 epochs: seeds differ in accuracy
		}
	}
	broken := func(c *config.Run) {
		synthetic("ce", false)(c)
		c.Dataset, c.DataDir = "cifar10", missing
	}
	return Command{Name: "t", Defaults: train.DefaultConfig, Bind: BindFlags, Presets: []experiment.Preset{{
		Name: "tiny", Table: true,
		Runs: []experiment.PresetRun{
			{Label: "CE", Apply: synthetic("ce", false)},
			{Label: "BS + LWR", Apply: synthetic("balanced-softmax", true), Paper: 50},
			{Label: "broken", Apply: broken},
		}}}}
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestTableSeeds (issue 13): a two-row × two-seed table runs seed 0, has
// one seed-1 run interrupted, and continues: finished seeds are skipped,
// the interrupted one resumed, the failing row reported while the others
// complete; table.csv holds mean and std of the runs' summary.json files.
func TestTableSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("trains five small runs")
	}
	dir := t.TempDir()
	cmd := tinyTable(filepath.Join(dir, "no-cifar"))
	out := filepath.Join(dir, "out")
	args := func(extra ...string) []string {
		return append([]string{"--preset", "tiny", "--out", out, "--quiet"}, extra...)
	}
	if err := cmd.Run(args("--seeds", "0")); err == nil || !strings.Contains(err.Error(), "1 of 3 runs failed") {
		t.Fatalf("seed 0: err = %v, want the failed row counted", err)
	}
	plan, err := cmd.Configs(args("--seeds", "0,1"))
	if err != nil {
		t.Fatal(err)
	}
	// plan: CE s0, CE s1, BS+LWR s0, BS+LWR s1, broken s0, broken s1.
	if len(plan.Configs) != 6 || !plan.Done[0] || plan.Done[1] || !plan.Done[2] || plan.Done[4] {
		t.Fatalf("plan: %d runs, done %v; want 6, seed-0 runs of the good rows done", len(plan.Configs), plan.Done)
	}
	// Interrupt BS + LWR seed 1 after three steps, as Ctrl-C would.
	cut := plan.Configs[3]
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := train.Run(ctx, cut, nil, train.StopAfter(3, cancel)); err == nil {
		t.Fatal("the cut run finished")
	}
	seed0 := filepath.Join(plan.Configs[0].Out, train.SummaryFile)
	before := hashFile(t, seed0)
	if err := cmd.Run(args("--seeds", "0,1")); err == nil || !strings.Contains(err.Error(), "2 of 6 runs failed") {
		t.Fatalf("seeds 0,1: err = %v, want the failed row's two seeds counted", err)
	}
	if hashFile(t, seed0) != before {
		t.Error("a finished seed was run again")
	}
	b, _ := os.ReadFile(filepath.Join(cut.Out, train.LogFile))
	if strings.Count(string(b), "\n") != 3 {
		t.Errorf("resumed run's log has %d lines, want 3", strings.Count(string(b), "\n"))
	}

	// table.csv against the summaries.
	f, err := os.Open(filepath.Join(out, "tiny", "table.csv"))
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 4 {
		t.Fatalf("table.csv: %d lines, want a header and 3 rows", len(records))
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	for i, row := range plan.Table.Rows[:2] {
		var top1, few []float64
		for _, seed := range []int64{0, 1} {
			var s train.Summary
			b, err := os.ReadFile(filepath.Join(experiment.SeedDir(row.Dir, seed), train.SummaryFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			top1 = append(top1, float64(s.Final.Top1))
			few = append(few, float64(s.Final.Few))
		}
		rec := records[i+1]
		check := func(name string, want float64) {
			got, err := strconv.ParseFloat(rec[col[name]], 64)
			if err != nil || math.Abs(got-want) > 1e-9 {
				t.Errorf("%s %s = %q, want %v", row.Label, name, rec[col[name]], want)
			}
		}
		mean := func(v []float64) float64 { return (v[0] + v[1]) / 2 }
		std := func(v []float64) float64 { return math.Abs(v[0]-v[1]) / math.Sqrt2 } // sample std of two
		if top1[0] == top1[1] {
			t.Logf("%s: both seeds give top-1 %v", row.Label, top1[0])
		}
		check("top1_mean", mean(top1))
		check("top1_std", std(top1))
		check("few_mean", mean(few))
		check("few_std", std(few))
		if rec[col["n"]] != "2" {
			t.Errorf("%s: n = %s, want 2", row.Label, rec[col["n"]])
		}
	}
	if got := records[2][col["diff_top1"]]; got == "" {
		t.Error("BS + LWR: no difference to the paper's number")
	}
	if broken := records[3]; broken[col["n"]] != "0" || broken[col["failed"]] != "2" {
		t.Errorf("broken row: n %s, failed %s; want 0 and 2", broken[col["n"]], broken[col["failed"]])
	}
	// The cosine distribution per row, from the checkpoints: its mean is
	// the one each run logged for its final weights.
	for _, fig := range []string{"cosines.png", "by_count.png", "norms_by_count.png"} {
		if _, err := os.Stat(filepath.Join(out, "tiny", fig)); err != nil {
			t.Error(err)
		}
	}
	results, err := experiment.Collect(plan.Table.Rows, nil, train.ClassifierStats)
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range plan.Table.Rows[:2] {
		var logged []float64
		for _, seed := range []int64{0, 1} {
			b, err := os.ReadFile(filepath.Join(experiment.SeedDir(row.Dir, seed), "log.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			var last struct {
				Weights struct {
					CosMean float64 `json:"cos_mean"`
				} `json:"classifier"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
				t.Fatal(err)
			}
			logged = append(logged, last.Weights.CosMean)
		}
		got := results[i]
		if want := (logged[0] + logged[1]) / 2; got.CosMean.N != 2 || math.Abs(got.CosMean.Mean-want) > 1e-9 {
			t.Errorf("%s: mean cosine %v over %d seeds, the logs' %v", row.Label, got.CosMean.Mean, got.CosMean.N, want)
		}
		var sum float64
		for _, f := range got.CosFrac {
			sum += f
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("%s: cosine distribution sums to %v", row.Label, sum)
		}
	}
	// Runs whose summaries predate the cached cosines: the table reads the
	// checkpoints instead, and gets the same distributions.
	for _, row := range plan.Table.Rows[:2] {
		for _, seed := range []int64{0, 1} {
			path := filepath.Join(experiment.SeedDir(row.Dir, seed), train.SummaryFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var sum map[string]json.RawMessage
			if err := json.Unmarshal(b, &sum); err != nil {
				t.Fatal(err)
			}
			if sum["cosine_histogram"] == nil || sum["classifier"] == nil {
				t.Fatalf("%s: no cosine_histogram or classifier", path)
			}
			delete(sum, "cosine_histogram")
			delete(sum, "classifier")
			if b, err = json.Marshal(sum); err == nil {
				err = os.WriteFile(path, b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	fromCheckpoints, err := experiment.Collect(plan.Table.Rows, nil, train.ClassifierStats)
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range plan.Table.Rows[:2] {
		a, b := results[i], fromCheckpoints[i]
		if math.Abs(a.CosMean.Mean-b.CosMean.Mean) > 1e-12 || len(a.CosFrac) != len(b.CosFrac) {
			t.Errorf("%s: mean cosine %v from the summaries, %v from the checkpoints", row.Label, a.CosMean.Mean, b.CosMean.Mean)
			continue
		}
		for k := range a.CosFrac {
			if math.Abs(a.CosFrac[k]-b.CosFrac[k]) > 1e-12 {
				t.Errorf("%s: cosine bin %d: %v from the summaries, %v from the checkpoints", row.Label, k, a.CosFrac[k], b.CosFrac[k])
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "tiny", "table.md"))
	if err != nil || !strings.Contains(string(md), "Failed runs:") || !strings.Contains(string(md), "no-cifar") {
		t.Errorf("table.md does not report the failures:\n%s", md)
	}
	// --report writes the table from the finished runs, training nothing:
	// the good rows as before; the broken row's seeds, whose failures it
	// does not know, count as missing.
	if err := cmd.Run(args("--seeds", "0,1", "--report")); err != nil {
		t.Fatalf("--report: %v", err)
	}
	f, err = os.Open(filepath.Join(out, "tiny", "table.csv"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if strings.Join(again[i], ",") != strings.Join(records[i], ",") {
			t.Errorf("--report changed row %d:\n%v\n%v", i, again[i], records[i])
		}
	}
	if broken := again[3]; broken[col["failed"]] != "0" || broken[col["missing"]] != "2" {
		t.Errorf("--report: broken row failed %s, missing %s; want 0 and 2", broken[col["failed"]], broken[col["missing"]])
	}
}

// TestTableParallel: --parallel 2 trains two runs at once and gives the
// table a one-after-the-other invocation gives (initial weights are drawn
// one run at a time).
func TestTableParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains eight small runs")
	}
	dir := t.TempDir()
	cmd := tinyTable(filepath.Join(dir, "no-cifar"))
	cmd.Presets[0].Runs = cmd.Presets[0].Runs[:2] // the two that work
	read := func(out string) string {
		b, err := os.ReadFile(filepath.Join(out, "tiny", "table.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	if err := cmd.Run([]string{"--preset", "tiny", "--seeds", "0,1", "--out", one, "--quiet"}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Run([]string{"--preset", "tiny", "--seeds", "0,1", "--out", two, "--quiet", "--parallel", "2"}); err != nil {
		t.Fatal(err)
	}
	if a, b := read(one), read(two); a != b {
		t.Errorf("--parallel 2 changed the table:\n%s\nvs\n%s", b, a)
	}
}
