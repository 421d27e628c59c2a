package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/lwr-go/lwr/internal/tbtest"
	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/dist"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/tensorboard"
)

func TestLearningRate(t *testing.T) {
	c := DefaultConfig() // lr 0.1, warm-up 5, ×0.1 at 140 and 170
	cases := []struct {
		epoch int
		want  float64
	}{{0, 0.02}, {1, 0.04}, {4, 0.1}, {5, 0.1}, {139, 0.1}, {140, 0.01}, {169, 0.01}, {170, 0.001}, {199, 0.001}}
	for _, k := range cases {
		if got := LearningRate(c, k.epoch); math.Abs(got-k.want) > 1e-15 {
			t.Errorf("epoch %d: lr %v, want %v", k.epoch, got, k.want)
		}
	}
}

func TestEvalBatch(t *testing.T) {
	for _, c := range []struct {
		dev   gotch.Device
		batch int
		want  int
	}{
		{gotch.CPU, 128, cpuEvalBatch}, // small batches stay in cache
		{gotch.CPU, 16, cpuEvalBatch},
		{gotch.CudaBuilder(0), 128, 256}, // no gradients to keep: room for twice the batch
		{gotch.CudaBuilder(1), 512, 1024},
	} {
		if got := (Config{Run: config.Run{BatchSize: c.batch}}).evalBatch(c.dev); got != c.want {
			t.Errorf("evalBatch(%s) with batch %d = %d, want %d", c.dev.Name, c.batch, got, c.want)
		}
	}
}

// TestUseThreads: 0 means every core (libtorch's own default is one
// thread on some machines, which made --eval 1.6× slower than the
// evaluation inside a run).
func TestUseThreads(t *testing.T) {
	err := libtorch.OnThread(func() error {
		prev := libtorch.NumThreads()
		defer libtorch.SetNumThreads(prev)
		for _, c := range []struct{ n, want int }{{1, 1}, {0, runtime.NumCPU()}, {2, 2}} {
			useThreads(c.n)
			if got := libtorch.NumThreads(); got != c.want {
				t.Errorf("useThreads(%d): %d threads, want %d", c.n, got, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	cases := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.LWRConfig.Theta = 1.5 }, "--lwr-theta 1.5 is out of range"},
		{func(c *Config) { c.LWRConfig.Tau = 0 }, "--lwr-tau 0 is out of range"},
		{func(c *Config) { c.ImbalanceFactor = 0.5 }, "--imb-factor 0.5: want ≥ 1"},
		{func(c *Config) { c.Loss.Name = "hinge" }, `--loss: unknown loss "hinge"`},
		{func(c *Config) { c.Dataset = "mnist" }, `--dataset "mnist"`},
		{func(c *Config) { c.Milestones = []int{170, 140} }, "--milestones [170 140]: want increasing"},
		{func(c *Config) { c.Sampler = "random" }, `--sampler "random"`},
		{func(c *Config) { c.FusedEval = "yes" }, `--fused-eval "yes": want auto, on or off`},
		{func(c *Config) { c.FusedBN = "on" }, `--fused-bn "on": want auto or off`},
		{func(c *Config) { c.MemoryFormat = "nchw" }, `--memory-format "nchw": want auto, channels-last, contiguous or blocked`},
		{func(c *Config) { *c = ImageNetConfig(); c.Model = "resnext50"; c.MemoryFormat = "blocked" }, "--memory-format blocked: ResNet-32 and ResNet-50 only (--model resnext50 runs channels-last)"},
		{func(c *Config) { c.MemoryFormat, c.FusedBN = "blocked", FusedOff }, "--memory-format blocked runs lwr's batch-norm kernel: not with --fused-bn off"},
		{func(c *Config) { c.MemoryFormat, c.Device = "blocked", "cuda:1" }, "--memory-format blocked is for CPUs: not with --device cuda:1"},
		{func(c *Config) { c.ConvAlgorithm = "fft" }, `--conv-algorithm "fft": want auto, direct or winograd`},
		{func(c *Config) { c.MemoryFormat, c.ConvAlgorithm = "channels-last", "winograd" }, "--conv-algorithm winograd: for blocked activations, not with --memory-format channels-last"},
		{func(c *Config) { c.LWRSchedule = "cosine" }, "--lwr-schedule"},
		{func(c *Config) { c.BatchSize = 0 }, "--batch-size 0"},
		// Loader bounds (case 9): a typo must not ask for terabytes.
		{func(c *Config) { c.BatchSize = 1 << 20 }, "--batch-size 1048576: want 1..65536"},
		{func(c *Config) { *c = ImageNetConfig(); c.Workers = 10000 }, "--workers 10000: want 0..256"},
		{func(c *Config) { *c = ImageNetConfig(); c.Prefetch = 1000 }, "--prefetch 1000: want 0..64"},
		{func(c *Config) { *c = ImageNetConfig(); c.ImageSize = 100000 }, "--image-size 100000: want 32..1024"},
		{func(c *Config) { *c = ImageNetConfig(); c.MaxPixels = 0 }, "--max-image-pixels 0"},
		{func(c *Config) { *c = ImageNetConfig(); c.SkipCorrupt = true }, "--skip-corrupt: needs --check-images"},
		{func(c *Config) { c.Dist = &dist.Group{Env: dist.Env{World: 3}} }, "--batch-size 128: the global batch must divide by the 3 workers"},
		// Issue 26, cases 7 and 9: threads bounded, floats finite.
		{func(c *Config) { c.Threads = 1000 }, "--threads 1000: want 0 (every core) to"},
		{func(c *Config) { c.Threads = -1 }, "--threads -1: want 0 (every core) to"},
		{func(c *Config) { c.LR = math.Inf(1) }, "--lr +Inf: want a finite number"},
		{func(c *Config) { c.WeightDecay = math.Inf(1) }, "--wd +Inf: want a finite number"},
		{func(c *Config) { c.Loss.IBAlpha = math.Inf(1) }, "--ib-alpha +Inf: want a finite number"},
		{func(c *Config) { c.Momentum = math.NaN() }, "--momentum NaN: want a finite number"},
	}
	for _, k := range cases {
		c := DefaultConfig()
		k.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("err = %v, want one containing %q", err, k.want)
		}
	}
	c := DefaultConfig()
	c.LWR = false
	c.LWRConfig.Theta = 9 // ignored without LWR
	c.Out = "runs/x"
	if err := c.Validate(); err != nil {
		t.Errorf("LWR off: %v", err)
	}
}

func TestConfigDiff(t *testing.T) {
	a := DefaultConfig()
	b := a
	b.Out, b.Device, b.FusedBN, b.MemoryFormat, b.ConvAlgorithm = "elsewhere", "cpu", FusedOff, "contiguous", "winograd" // change results by rounding at most: resumable
	if d := a.Diff(b.Run); len(d) != 0 || a.Hash() != b.Hash() {
		t.Errorf("diff %v for settings that do not change results", d)
	}
	b.LR = 0.2
	b.LWRConfig.Tau = 0.5
	d := a.Diff(b.Run)
	want := []string{"lr: 0.1 → 0.2", "lwr_config.Tau: 0.1 → 0.5"}
	if strings.Join(d, "|") != strings.Join(want, "|") {
		t.Errorf("diff %q, want %q", d, want)
	}
}

// tinyConfig is a run small enough for tests: the synthetic set, batch 64.
func tinyConfig(out string) Config {
	c := DefaultConfig()
	c.Dataset, c.Device, c.Out, c.Quiet = "synthetic", "cpu", out, true
	c.BatchSize, c.EvalEvery = 64, 1
	ShortSchedule(&c, 3)
	return c
}

// TestInterruptResumeExact: a run interrupted mid-epoch (as by SIGINT),
// then resumed, ends with exactly the metrics of an uninterrupted run.
func TestInterruptResumeExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	dir := t.TempDir()
	whole := tinyConfig(filepath.Join(dir, "whole"))
	want, err := Run(context.Background(), whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	cut := tinyConfig(filepath.Join(dir, "cut"))
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Run(ctx, cut, nil, StopAfter(6, cancel)) // epoch 2, step 2 of 4
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: err = %v, want ErrInterrupted", err)
	}
	cut.Resume = true
	got, err := Run(context.Background(), cut, nil)
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(want.Final)
	gb, _ := json.Marshal(got.Final)
	if string(wb) != string(gb) {
		t.Errorf("resumed run's metrics differ:\n got %s\nwant %s", gb, wb)
	}
	other := cut
	other.LR = 0.05
	if _, err := Run(context.Background(), other, nil); err == nil || !strings.Contains(err.Error(), "lr: 0.1 → 0.05") {
		t.Errorf("resume with another lr: err = %v, want the differing setting named", err)
	}
}

// TestObservers: observers see every step in order, before and after,
// with the run's position; StopAfter stops the run after its step; the
// progress writer gets the live line after the observers.
func TestObservers(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	c := tinyConfig(filepath.Join(t.TempDir(), "run"))
	ctx, cancel := context.WithCancel(context.Background())
	var events []string
	var steps []Step
	record := ObserverFuncs{
		Before: func(epoch, batch int) { events = append(events, fmt.Sprintf("before %d.%d", epoch, batch)) },
		After: func(s Step) {
			events = append(events, fmt.Sprintf("after %d.%d", s.Epoch, s.Batch))
			if s.Vars == nil || len(s.Vars.Variables()) == 0 {
				t.Error("a step without the network's variables")
			}
			s.Vars = nil
			steps = append(steps, s)
		},
	}
	var progress bytes.Buffer
	c.Quiet = false
	_, err := Run(ctx, c, &Console{W: &progress, Live: true}, record, StopAfter(6, cancel))
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted after 6 steps", err)
	}
	want := []string{"before 0.0", "after 0.0", "before 0.1", "after 0.1", "before 0.2", "after 0.2", "before 0.3", "after 0.3",
		"before 1.0", "after 1.0", "before 1.1", "after 1.1"}
	if !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	for i, s := range steps {
		if s.Epochs != c.Epochs || s.Batches != 4 || !(s.Loss > 0) || !(s.ImagesSec > 0) || s.Left < 0 { // Left is whole seconds: 0 near the end of a fast run
			t.Errorf("step %d: %+v", i, s)
		}
	}
	lines := strings.Count(progress.String(), "\repoch ")
	if lines != 6 || !strings.Contains(progress.String(), "\repoch 2/3  step 2/4  loss ") {
		t.Errorf("progress line written %d times, want 6 ending at epoch 2 step 2:\n%q", lines, progress.String())
	}
}

// TestConfigJSONStable: config.json, summary.json and the settings hash
// a checkpoint resumes by are those of lwr before train.Config embedded
// config.Run (testdata/config_golden.txt, written at e91b268): runs made
// since resume, and their tables read, whatever the package layout. The
// one change since: summary.json's metrics gained top5 (issue 27).
func TestConfigJSONStable(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", "config_golden.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for _, c := range []Config{DefaultConfig(), ImageNetConfig()} {
		b, _ := json.Marshal(c)
		sb, _ := json.Marshal(Summary{Config: c.Run, TrainCounts: []int64{1}})
		fmt.Fprintf(&got, "HASH %s\nJSON %s\nSUM %s\n", c.Hash(), b, sb)
	}
	if got.String() != string(want) {
		t.Errorf("config JSON or hash changed:\n got %s\nwant %s", got.String(), want)
	}
}

// TestLogsOffTerminal (issue 27): with stderr not a terminal, a run writes
// plain lines: one per epoch, one per evaluation, and progress lines no
// more often than LogEvery; train.log keeps the same lines with their
// time, and a resumed run appends to it.
func TestLogsOffTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	c := tinyConfig(filepath.Join(t.TempDir(), "run"))
	c.Quiet, c.LogEvery, c.EvalEvery = false, time.Nanosecond, 2 // a progress line after every step but an epoch's last
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Run(ctx, c, &Console{W: &out, Prefix: "[row seed 0] "}, StopAfter(6, cancel)); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	c.Resume = true
	if _, err := Run(context.Background(), c, &Console{W: &out, Prefix: "[row seed 0] "}); err != nil {
		t.Fatal(err)
	}
	stamp := `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  `
	want := []string{
		"started: 3 epochs, seed 0",
		"epoch 1/3  step 1/4  loss ", "epoch 1/3  step 2/4  loss ", "epoch 1/3  step 3/4  loss ",
		"epoch 1/3 done  loss ",
		"epoch 2/3  step 1/4  loss ", "epoch 2/3  step 2/4  loss ",
		"resumed at epoch 2/3 step 3",
		"epoch 2/3  step 3/4  loss ",
		"epoch 2/3 done  loss ", "eval  2/3  top-1 ",
		"epoch 3/3  step 1/4  loss ", "epoch 3/3  step 2/4  loss ", "epoch 3/3  step 3/4  loss ",
		"epoch 3/3 done  loss ", "eval  3/3  top-1 ",
	}
	check := func(name, text, prefix string) {
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", name, len(lines), len(want), text)
		}
		for i, l := range lines {
			if !regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + stamp + regexp.QuoteMeta(want[i])).MatchString(l) {
				t.Errorf("%s line %d: %q, want %q after the prefix and time", name, i+1, l, want[i])
			}
			if strings.ContainsAny(l, "\r\033") {
				t.Errorf("%s line %d: %q holds terminal control characters", name, i+1, l)
			}
		}
	}
	check("console", out.String(), "[row seed 0] ")
	b, err := os.ReadFile(filepath.Join(c.Out, TrainLog))
	if err != nil {
		t.Fatal(err)
	}
	check(TrainLog, string(b), "")
	if !regexp.MustCompile(`epoch 2/3 done  loss \d+\.\d{4}  R \d+\.\d{4}  λ 0\.\d{3}  lr 0\.\d+  \d+ img/s  \d+\.\d s  ETA \d+s`).Match(b) ||
		!regexp.MustCompile(`eval  3/3  top-1 \d+\.\d\d  top-5 \d+\.\d\d  many (\d+\.\d\d|-)  medium \d+\.\d\d  few \d+\.\d\d  NLL \d+\.\d+  ECE \d+\.\d+`).Match(b) {
		t.Errorf("train.log's epoch or evaluation line lacks a field:\n%s", b)
	}
}

// TestEventsMatchLog (issue 27): TensorBoard's own reader finds in a run's
// event file the scalars of its log.jsonl at the same epochs, the
// classifier's histograms at each evaluation, the figures and the config;
// a run interrupted mid-epoch and resumed has the same events, step for
// step and value for value (timings aside), as one that ran through.
func TestEventsMatchLog(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two small runs")
	}
	py := tbtest.Python(t)
	dir := t.TempDir()
	whole := tinyConfig(filepath.Join(dir, "whole"))
	if _, err := Run(context.Background(), whole, nil); err != nil {
		t.Fatal(err)
	}
	cut := tinyConfig(filepath.Join(dir, "cut"))
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Run(ctx, cut, nil, StopAfter(6, cancel)); !errors.Is(err, ErrInterrupted) { // epoch 2, step 2 of 4
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	// As if killed between epoch 2's events and its checkpoint: an event
	// the checkpoint does not know of, which the resumed run must cut.
	w, _, err := tensorboard.Continue(cut.Out, 1<<30)
	if err == nil {
		err = w.WriteScalars(2, []tensorboard.Scalar{{Tag: "train/loss_bal", Value: 999}})
		w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	cut.Resume = true
	if _, err := Run(context.Background(), cut, nil); err != nil {
		t.Fatal(err)
	}
	timing := map[string]bool{"train/images_per_sec": true, "train/data_wait_seconds": true, "train/seconds": true}
	var got [2]tbtest.Events
	for i, c := range []Config{whole, cut} {
		got[i] = tbtest.Read(t, py, c.Out)
		b, err := os.ReadFile(filepath.Join(c.Out, LogFile))
		if err != nil {
			t.Fatal(err)
		}
		var lines []EpochLog
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e EpochLog
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, e)
		}
		for _, tag := range []string{"train/loss_bal", "train/lwr_R", "train/lwr_lambda", "train/lr", "test/top1", "test/top5", "test/nll", "test/ece", "classifier/norm_mean", "classifier/cos_max"} {
			s := got[i].Scalars[tag]
			if len(s) != len(lines) {
				t.Errorf("%s: %s has %d steps, log.jsonl %d epochs", c.Out, tag, len(s), len(lines))
				continue
			}
			for k, l := range lines {
				want := map[string]float64{"train/loss_bal": l.LossBal, "train/lwr_R": l.LossLWR, "train/lwr_lambda": l.Lambda, "train/lr": l.LR,
					"test/top1": float64(l.Test.Top1), "test/top5": float64(l.Test.Top5), "test/nll": float64(l.Test.NLL), "test/ece": float64(l.Test.ECE),
					"classifier/norm_mean": l.Weights.NormMean, "classifier/cos_max": l.Weights.CosMax}[tag]
				if s[k][0] != float64(l.Epoch) || s[k][1] != float64(float32(want)) {
					t.Errorf("%s: %s step %v = %v, log.jsonl epoch %d %v", c.Out, tag, s[k][0], s[k][1], l.Epoch, want)
				}
			}
		}
		if h := got[i].Histograms["classifier/row_cosines"]; len(h) != 3 || h[2][0] != 3 || h[2][1] != 45 || h[2][4] != 45 {
			t.Errorf("%s: row_cosines histograms %v, want steps 1-3 of the 45 pairs of 10 classes", c.Out, h)
		}
		if h := got[i].Histograms["classifier/row_norms"]; len(h) != 3 || h[0][1] != 10 {
			t.Errorf("%s: row_norms histograms %v, want 3 of 10 rows", c.Out, h)
		}
		for _, fig := range []string{"figures/curves", "figures/accuracy_by_count", "figures/norms", "figures/reliability", "figures/cosine_matrix"} {
			if im := got[i].Images[fig]; len(im) != 1 || im[0][0] != 3 || im[0][1] < 100 {
				t.Errorf("%s: %s %v, want one image at step 3", c.Out, fig, im)
			}
		}
		if tx := got[i].Text["config"]; len(tx) != 1 || !strings.Contains(tx[0][1].(string), `"dataset": "synthetic"`) {
			t.Errorf("%s: config text %v, want it once", c.Out, tx)
		}
	}
	for tag, s := range got[0].Scalars {
		if !timing[tag] && !reflect.DeepEqual(s, got[1].Scalars[tag]) {
			t.Errorf("%s: uninterrupted %v, resumed %v", tag, s, got[1].Scalars[tag])
		}
	}
	if len(got[0].Scalars) != len(got[1].Scalars) || !reflect.DeepEqual(got[0].Histograms, got[1].Histograms) {
		t.Errorf("the resumed run's tags or histograms differ:\n%v\n%v", got[0], got[1])
	}
}
