package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/dist"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// TestMain runs one worker of a data-parallel test when the test binary
// is started as one (LWR_TRAIN_TEST_WORKER names what it does).
func TestMain(m *testing.M) {
	if mode := os.Getenv("LWR_TRAIN_TEST_WORKER"); mode != "" {
		if err := distWorker(mode, os.Getenv("LWR_TRAIN_TEST_OUT")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// distSteps is how many steps the data-parallel tests train.
const distSteps = 5

// paramValues are the trainable parameters of vs, in name order, as
// float64.
func paramValues(vs *nn.VarStore) []float64 {
	_, params := trainableParams(vs)
	return doubles(params)
}

// allValues are every variable of vs (parameters and batch-norm
// statistics), in name order, as float64.
func allValues(vs *nn.VarStore) []float64 {
	all, _ := sortedVars(vs)
	return doubles(all)
}

// doubles are the values of vars, one after another, as float64.
func doubles(vars []*ts.Tensor) []float64 {
	var out []float64
	for _, t := range vars {
		out = append(out, t.MustTotype(gotch.Double, false).Float64Values(true)...)
	}
	return out
}

// valuesAfterSteps trains c for distSteps steps and has rank 0 write
// values of the variables then into path, as JSON.
func valuesAfterSteps(ctx context.Context, cancel func(), c Config, values func(*nn.VarStore) []float64, path string) error {
	var final []float64
	after := ObserverFuncs{After: func(s Step) {
		if s.Batch+1 == distSteps {
			final = values(s.Vars)
			cancel()
		}
	}}
	if _, err := Run(ctx, c, nil, after); err != ErrInterrupted {
		return fmt.Errorf("run: %v, want it interrupted after %d steps", err, distSteps)
	}
	if c.Dist.Rank != 0 {
		return nil
	}
	b, _ := json.Marshal(final)
	return os.WriteFile(path, b, 0o644)
}

// distWorker is one rank: it joins the job of its environment and trains
// (or evaluates) on the synthetic set, writing what the test compares
// into out (rank 0; every rank for "steps").
func distWorker(mode, out string) error {
	env, _, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	g, err := dist.Join(env, "gloo", 20*time.Second)
	if err != nil {
		return err
	}
	defer g.Close()
	c := tinyConfig(filepath.Join(out, "run"))
	c.Dist, c.BatchSize, c.Threads = g, 16, 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lines []string
	switch mode {
	case "steps": // float32, augmented, BN in training mode: the parameters after each step
		after := ObserverFuncs{After: func(s Step) {
			h := sha256.New()
			for _, v := range paramValues(s.Vars) {
				binary.Write(h, binary.LittleEndian, math.Float64bits(v))
			}
			lines = append(lines, fmt.Sprintf("step %d %x", s.Batch+1, h.Sum(nil)))
			if s.Batch+1 == distSteps {
				cancel()
			}
		}}
		if _, err := Run(ctx, c, nil, after); err != ErrInterrupted {
			return fmt.Errorf("run: %v, want it interrupted after %d steps", err, distSteps)
		}
		return os.WriteFile(filepath.Join(out, fmt.Sprintf("rank%d.txt", env.Rank)), []byte(strings.Join(lines, "\n")), 0o644)
	case "equal": // float64, no augmentation, BN in eval mode: the parameters after the steps
		gotch.DefaultDType = gotch.Double
		bnTrain = false
		c.Augment = false
		c.LR = 1e-3 // without batch statistics the network blows up at 0.1
		return valuesAfterSteps(ctx, cancel, c, paramValues, filepath.Join(out, fmt.Sprintf("world%d.json", env.World)))
	case "syncbn", "nosync": // float64, no augmentation, BN in training mode, with and without --sync-bn: every variable after the steps
		gotch.DefaultDType = gotch.Double
		c.Augment = false
		c.SyncBN = mode == "syncbn"
		return valuesAfterSteps(ctx, cancel, c, allValues, filepath.Join(out, fmt.Sprintf("%s%d.json", mode, env.World)))
	case "failone": // rank 1 cannot read its data: every rank stops, saying why
		if env.Rank == 1 {
			c.Dataset, c.DataDir = "cifar10", filepath.Join(out, "no-such-folder")
		}
		_, err := Run(ctx, c, nil)
		return os.WriteFile(filepath.Join(out, fmt.Sprintf("fail%d.txt", env.Rank)), []byte(fmt.Sprint(err)), 0o644)
	case "eval": // one network, evaluated sharded and on its own
		return libtorch.OnThread(func() error {
			train, test, _, err := sources(c, gotch.CPU)
			if err != nil {
				return err
			}
			libtorch.ManualSeed(7)
			vs := nn.NewVarStore(gotch.CPU)
			net, err := buildNetwork(vs, c, train)
			if err != nil {
				return err
			}
			// Batches of 24 (several per rank), and one batch of them all
			// (rank 1 has none).
			var lines []string
			for _, batch := range []int{24, len(test.Labels())} {
				sharded, err := evaluateOn(context.Background(), g, net, test, batch, train.Counts())
				if err != nil {
					return err
				}
				alone, err := evaluate(context.Background(), net, test, batch, train.Counts())
				if err != nil {
					return err
				}
				a, _ := json.Marshal(sharded)
				b, _ := json.Marshal(alone)
				lines = append(lines, string(a)+"\n"+string(b))
			}
			return os.WriteFile(filepath.Join(out, fmt.Sprintf("eval%d.txt", env.Rank)), []byte(strings.Join(lines, "\n")), 0o644)
		})
	}
	return fmt.Errorf("unknown worker mode %q", mode)
}

// runWorkers starts world workers of mode on the loopback and waits for
// them; it fails the test with their output if one fails.
func runWorkers(t *testing.T, mode string, world int, out string) {
	t.Helper()
	if !dist.Available() {
		t.Skip("this build has no Gloo backend: install libgloo-dev and run make setup")
	}
	port, err := dist.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmds := make([]*exec.Cmd, world)
	outs := make([]strings.Builder, world)
	for r := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		env := dist.Env{Rank: r, LocalRank: r, World: world, Addr: "127.0.0.1", Port: port}
		cmd.Env = append(append(os.Environ(), "LWR_TRAIN_TEST_WORKER="+mode, "LWR_TRAIN_TEST_OUT="+out), env.Environ()...)
		cmd.Stdout, cmd.Stderr = &outs[r], &outs[r]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = cmd
	}
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s worker, rank %d of %d: %v\n%s", mode, r, world, err, outs[r].String())
		}
	}
}

// TestDataParallelRanksIdentical (issue 11): two processes over loopback
// (Gloo), each with half of a batch of 16, augmenting differently: after
// each of 5 steps both hold bit-identical parameters.
func TestDataParallelRanksIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two training processes")
	}
	out := t.TempDir()
	runWorkers(t, "steps", 2, out)
	var ranks [2][]string
	for r := range ranks {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("rank%d.txt", r)))
		if err != nil {
			t.Fatal(err)
		}
		ranks[r] = strings.Split(string(b), "\n")
	}
	// Cancelled in step 5 (StopAfter's semantics), the ranks stop
	// together at the end of that step.
	if len(ranks[0]) != distSteps || len(ranks[1]) != distSteps {
		t.Fatalf("steps recorded: %d and %d, want %d", len(ranks[0]), len(ranks[1]), distSteps)
	}
	for k := range ranks[0] {
		if ranks[0][k] != ranks[1][k] {
			t.Errorf("after step %d the ranks differ: %s vs %s", k+1, ranks[0][k], ranks[1][k])
		}
	}
	if ranks[0][0] == ranks[0][distSteps-1] {
		t.Error("the parameters did not change over the steps")
	}
	// Rank 0 alone wrote the run folder.
	if _, err := os.Stat(filepath.Join(out, "run", CheckpointFile)); err != nil {
		t.Errorf("rank 0's checkpoint of the interrupted run: %v", err)
	}
}

// TestDataParallelEqualsOneProcess (issue 11): in float64 with batch norm in
// eval mode, 2 processes × half the batch train the same parameters as 1
// process × the whole batch (to 1e-10): the gradient average over ranks is
// the whole batch's gradient.
func TestDataParallelEqualsOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three training processes")
	}
	out := t.TempDir()
	runWorkers(t, "equal", 1, filepath.Join(out))
	os.RemoveAll(filepath.Join(out, "run"))
	runWorkers(t, "equal", 2, filepath.Join(out))
	var w [2][]float64
	for k, world := range []int{1, 2} {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("world%d.json", world)))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &w[k]); err != nil {
			t.Fatal(err)
		}
	}
	if len(w[0]) != len(w[1]) || len(w[0]) < 400000 {
		t.Fatalf("%d and %d parameters", len(w[0]), len(w[1]))
	}
	var worst float64
	for i := range w[0] {
		worst = math.Max(worst, math.Abs(w[0][i]-w[1][i]))
	}
	t.Logf("largest difference over %d parameters: %.3g", len(w[0]), worst)
	if worst > 1e-10 {
		t.Errorf("2 processes × half batch vs 1 × whole batch: parameters differ by %.3g", worst)
	}
}

// TestSyncBatchNorm (issue 11): in float64 with batch norm in training
// mode, 2 processes × half the batch with --sync-bn train the same
// parameters and running statistics as 1 process × the whole batch (to
// 1e-10): each layer normalises with the whole batch's mean and variance,
// and their gradients flow back across the ranks. Without --sync-bn the
// two differ (each rank normalises its half alone).
func TestSyncBatchNorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five training processes")
	}
	out := t.TempDir()
	read := func(name string) []float64 {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		var v []float64
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	worst := func(a, b []float64) float64 {
		if len(a) != len(b) || len(a) < 400000 {
			t.Fatalf("%d and %d values", len(a), len(b))
		}
		var w float64
		for i := range a {
			w = math.Max(w, math.Abs(a[i]-b[i]))
		}
		return w
	}
	for _, run := range []struct {
		mode  string
		world int
	}{{"syncbn", 1}, {"syncbn", 2}, {"nosync", 2}} {
		os.RemoveAll(filepath.Join(out, "run"))
		runWorkers(t, run.mode, run.world, out)
	}
	one := read("syncbn1.json")
	synced, alone := worst(one, read("syncbn2.json")), worst(one, read("nosync2.json"))
	t.Logf("largest difference from 1 process × whole batch: %.3g with --sync-bn, %.3g without", synced, alone)
	if synced > 1e-10 {
		t.Errorf("--sync-bn, 2 processes × half batch vs 1 × whole batch: variables differ by %.3g; want ≤ 1e-10", synced)
	}
	if alone < 1e-6 {
		t.Errorf("without --sync-bn, 2 processes × half batch match 1 × whole batch to %.3g: the test cannot tell synchronised batch norm from per-rank", alone)
	}
}

// TestShardedEvaluation (issue 11): an evaluation sharded over 2 ranks
// gives the single-process evaluation's metrics exactly.
func TestShardedEvaluation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	out := t.TempDir()
	runWorkers(t, "eval", 2, out)
	for r := 0; r < 2; r++ {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("eval%d.txt", r)))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) != 4 {
			t.Fatalf("rank %d: %d lines", r, len(lines))
		}
		for k := 0; k < 4; k += 2 {
			if lines[k] != lines[k+1] || !strings.Contains(lines[k], "per_class") {
				t.Errorf("rank %d: sharded %s\nalone   %s", r, lines[k], lines[k+1])
			}
		}
	}
}

// TestDataParallelOneRankFails (issue 11): a rank that fails before
// training (its data unreadable) stops every rank at once: the others say
// another rank failed, and nothing is written.
func TestDataParallelOneRankFails(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	out := t.TempDir()
	began := time.Now()
	runWorkers(t, "failone", 2, out)
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("took %v (timeout 20 s): the ranks did not agree at once", d)
	}
	for r, want := range []string{"rank 0 of 2: stopping: another rank failed", "no-such-folder"} {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("fail%d.txt", r)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("rank %d: %q, want %q in it", r, b, want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "run", ConfigFile)); err == nil {
		t.Error("rank 0 wrote the run's config.json although rank 1 could not start")
	}
}
