package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/losses"
	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/optim"
	"github.com/lwr-go/lwr/pkg/report"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// EpochLog is one line of log.jsonl.
type EpochLog struct {
	Epoch     int              `json:"epoch"` // counting from 1
	LR        float64          `json:"lr"`
	Lambda    float64          `json:"lambda"`   // λ(t) of R (0 without LWR)
	LossBal   float64          `json:"loss_bal"` // mean balanced loss over the epoch's batches
	LossLWR   float64          `json:"loss_lwr"` // mean R (before λ)
	ImagesSec float64          `json:"images_per_sec"`
	DataWait  float64          `json:"data_wait_seconds"` // time spent getting batches: JPEG decoding not keeping up, or in-memory augmentation
	Seconds   float64          `json:"seconds"`
	Test      *metrics.Metrics `json:"test,omitempty"`
	Weights   *lwr.Stats       `json:"classifier,omitempty"`
}

// Summary is summary.json: the final result of a run.
type Summary struct {
	Config      Config          `json:"config"`
	TrainCounts []int64         `json:"train_counts"`
	Final       metrics.Metrics `json:"final"`
	Seconds     float64         `json:"seconds"`
}

// ErrInterrupted reports a run stopped by its context (SIGINT/SIGTERM)
// after checkpointing; it can be resumed.
var ErrInterrupted = errors.New("interrupted; checkpoint written, continue with --resume")

// Data loads the training subset and the test set of a configuration, and
// the subset's indices into the full training set (nil for synthetic data).
func Data(c Config) (train, test *data.Dataset, subset []int64, err error) {
	switch c.Dataset {
	case "fashion-mnist":
		dir := c.DataDir
		if dir == "" {
			dir = os.Getenv("FASHION_MNIST_DIR")
		}
		if dir == "" {
			dir = data.DefaultFashionMNISTDir
		}
		if train, err = data.LoadFashionMNIST(dir, true); err != nil {
			return nil, nil, nil, fmt.Errorf("%w (install Debian's dataset-fashion-mnist or pass --data-dir)", err)
		}
		if test, err = data.LoadFashionMNIST(dir, false); err != nil {
			return nil, nil, nil, err
		}
		return longTail(c, train, test, 600)
	case "cifar10", "cifar100":
		classes := 10
		if c.Dataset == "cifar100" {
			classes = 100
		}
		dir := c.DataDir
		if dir == "" {
			dir = "data"
		}
		if train, err = data.LoadCIFAR(dir, classes, true); err != nil {
			return nil, nil, nil, err
		}
		if test, err = data.LoadCIFAR(dir, classes, false); err != nil {
			return nil, nil, nil, err
		}
		return longTail(c, train, test, train.Len()/classes)
	case "synthetic":
		counts, err := data.LongTailCounts(10, 100, c.ImbalanceFactor)
		if err != nil {
			return nil, nil, nil, err
		}
		testCounts := make([]int, 10)
		for i := range testCounts {
			testCounts[i] = 20
		}
		return data.Synthetic(counts, uint64(c.Seed)+1), data.Synthetic(testCounts, uint64(c.Seed)+2), nil, nil
	}
	return nil, nil, nil, fmt.Errorf("--dataset %q: want fashion-mnist, cifar10, cifar100 or synthetic", c.Dataset)
}

func longTail(c Config, train, test *data.Dataset, nMax int) (*data.Dataset, *data.Dataset, []int64, error) {
	counts, err := data.LongTailCounts(train.Classes, nMax, c.ImbalanceFactor)
	if err != nil {
		return nil, nil, nil, err
	}
	idx, err := data.LongTailSubset(train.Labels, counts, c.SubsetSeed)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", train.Name, err)
	}
	sub, err := train.Subset(idx)
	if err != nil {
		return nil, nil, nil, err
	}
	sub.Name = fmt.Sprintf("%s-lt-if%g", train.Name, c.ImbalanceFactor)
	return sub, test, idx, nil
}

// Run trains c, writing config.json, log.jsonl, checkpoint.pt and
// summary.json to c.Out, and returns the final metrics. progress (may be
// nil) receives a live progress line. Cancelling ctx stops at the next step
// boundary (of training or of evaluation), checkpoints and returns
// ErrInterrupted. A libtorch error in a step or an evaluation checkpoints
// the last completed step and returns the error; a divergence (NaN or
// infinite losses, weights or test outputs) returns an ErrDiverged error
// and leaves the last good checkpoint as it was.
func Run(ctx context.Context, c Config, progress io.Writer) (Summary, error) {
	var sum Summary
	if err := c.Validate(); err != nil {
		return sum, err
	}
	err := libtorch.OnThread(func() error {
		var err error
		sum, err = run(ctx, c, progress)
		return err
	})
	return sum, err
}

// lastGood says what a diverged run leaves to resume from.
func lastGood(ckptPath string) string {
	if exists(ckptPath) {
		return ckptPath + " keeps the last good state"
	}
	return "nothing was checkpointed yet"
}

// faultBeforeStep, when set (by the fault-injection tests only), runs
// before each training step with the epoch and the batch (from 0).
var faultBeforeStep func(epoch, batch int)

// warnf prints a warning line to stderr.
func warnf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func run(ctx context.Context, c Config, progress io.Writer) (Summary, error) {
	start := time.Now()
	sum := Summary{Config: c}
	dev, err := libtorch.ParseDevice(c.Device)
	if err != nil {
		return sum, fmt.Errorf("--device: %w", err)
	}
	threads := c.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	libtorch.SetNumThreads(threads)
	// The data before the folder: a data error leaves nothing behind.
	trainSrc, testSrc, subset, err := sources(c, dev)
	if err != nil {
		return sum, err
	}
	dir, err := openRunDir(c, warnf)
	if err != nil {
		return sum, err
	}
	defer dir.close()
	counts := trainSrc.Counts()
	sum.TrainCounts = counts
	ckptPath := filepath.Join(c.Out, CheckpointFile)
	logPath := filepath.Join(c.Out, LogFile)

	libtorch.ManualSeed(c.Seed)
	vs := nn.NewVarStore(dev)
	net, err := newModel(vs.Root(), c, trainSrc)
	if err != nil {
		return sum, err
	}
	var reg *lwr.Regularizer
	if c.LWR {
		dim := net.Head().Weight.MustSize()[1]
		if reg, err = lwr.New(vs.Root().Sub("lwr"), dim, c.LWRConfig); err != nil {
			return sum, err
		}
	}
	loss, err := losses.New(c.Loss, counts)
	if err != nil {
		return sum, err
	}
	_, params := trainableParams(vs)
	opt, err := optim.NewSGD(params, c.LR, c.Momentum, c.WeightDecay, c.Nesterov)
	if err != nil {
		return sum, err
	}

	st := State{ConfigHash: c.Hash(), Config: c}
	fresh := !c.Resume
	if c.Resume && !exists(ckptPath) && !exists(filepath.Join(c.Out, PrevCheckpoint)) {
		// Stopped before its first checkpoint: same settings, from the start.
		var saved Config
		b, err := os.ReadFile(filepath.Join(c.Out, ConfigFile))
		if err == nil {
			err = json.Unmarshal(b, &saved)
		}
		if err != nil {
			return sum, fmt.Errorf("--resume: %s has no checkpoint, and its %s is unreadable: %v", c.Out, ConfigFile, err)
		}
		if err := describeDiff(filepath.Join(c.Out, ConfigFile), saved, c); err != nil {
			return sum, err
		}
		warnf("%s: no checkpoint yet (stopped in its first epoch): starting the run again", c.Out)
		fresh = true
	}
	if !fresh {
		path, saved, named, err := readLatestCheckpoint(c.Out, warnf)
		if err != nil {
			return sum, err
		}
		if err := describeDiff(path, saved.Config, c); err != nil {
			return sum, err
		}
		if err := loadCheckpoint(path, named, vs, opt); err != nil {
			return sum, err
		}
		st = saved
		st.Config = c
		// A kill between the log line and the checkpoint of an epoch
		// leaves a line the resumed run writes again: keep the log in
		// step with the checkpoint.
		if err := truncateLog(logPath, st.Epoch); err != nil {
			return sum, err
		}
	} else {
		if subset != nil {
			// The subset as a list file, "index label" per line, like
			// ImageNet-LT's: what other code (bench/torch_train.py) trains on.
			if err := data.WriteIndexList(filepath.Join(c.Out, SubsetFile), subset, trainSrc.Labels()); err != nil {
				return sum, err
			}
		}
		if err := writeJSON(filepath.Join(c.Out, ConfigFile), c); err != nil {
			return sum, err
		}
		if err := data.WriteFileAtomic(logPath, nil); err != nil {
			return sum, err
		}
	}
	// The run's seconds before this process: they survive resumes.
	before := st.Seconds
	elapsed := func() float64 { return before + time.Since(start).Seconds() }
	// checkpoint writes st, the position after the last completed step.
	checkpoint := func() error {
		st.Seconds = elapsed()
		return saveCheckpoint(ckptPath, vs, opt, st)
	}
	// stopped checkpoints the last completed step after err (an interrupt,
	// a libtorch error) and returns err, saying where the run stands.
	stopped := func(err error) error {
		if cerr := checkpoint(); cerr != nil {
			return fmt.Errorf("%w (and no checkpoint: %v)", err, cerr)
		}
		if errors.Is(err, ErrInterrupted) {
			return err
		}
		return fmt.Errorf("%w; %s holds epoch %d step %d: continue with --resume", err, ckptPath, st.Epoch+1, st.Step)
	}

	nTrain := len(trainSrc.Labels())
	var final metrics.Metrics
	var finalWeights lwr.Stats
	for epoch := st.Epoch; epoch < c.Epochs; epoch++ {
		// The epoch's schedule: pure functions of the epoch.
		opt.LR = LearningRate(c, epoch)
		if e, ok := loss.(losses.EpochSetter); ok {
			e.SetEpoch(epoch)
		}
		lambda := 0.0
		if reg != nil {
			lambda, _ = c.LWRSchedule.Weight(epoch, c.Epochs)
		}
		// The epoch's randomness: a generator of (seed, epoch), so that a
		// resumed epoch draws the same order and augmentation.
		rng := rand.New(rand.NewPCG(uint64(c.Seed), uint64(epoch)))
		order, err := data.Sampler(c.Sampler).Order(trainSrc.Labels(), trainSrc.Classes(), rng)
		if err != nil {
			return sum, err
		}
		if len(order)%c.BatchSize == 1 && len(order) > 1 {
			// A last batch of one image would give batch norm a variance
			// of 0/0 and NaN running statistics (PyTorch refuses such a
			// batch): leave that image out of this epoch's random order.
			order = order[:len(order)-1]
		}
		batches := (len(order) + c.BatchSize - 1) / c.BatchSize
		epochStart := time.Now()
		seenAtStart := st.Seen
		next, stop := trainSrc.Batches(ctx, order, c.BatchSize, c.Augment, rng, uint64(c.Seed), epoch, st.Step)
		var wait time.Duration
		for b := st.Step; b < batches; b++ {
			lo, hi := b*c.BatchSize, min((b+1)*c.BatchSize, len(order))
			t0 := time.Now()
			var x, y *ts.Tensor
			if cerr := libtorch.Catch(func() { x, y, err = next() }); cerr != nil { // the copy to the device can fail
				stop()
				return sum, stopped(fmt.Errorf("epoch %d step %d: data: %w", epoch+1, b+1, cerr))
			}
			wait += time.Since(t0)
			if err == nil && x == nil && ctx.Err() != nil { // interrupted while decoding
				stop()
				return sum, stopped(ErrInterrupted)
			}
			if err == nil && x == nil {
				err = fmt.Errorf("epoch %d: the data ended after %d of %d batches", epoch+1, b, batches)
			}
			if err != nil {
				stop()
				return sum, err
			}
			var lv, rv float64
			err = libtorch.Catch(func() {
				defer x.MustDrop()
				defer y.MustDrop()
				if faultBeforeStep != nil {
					faultBeforeStep(epoch, b)
				}
				lb, r := trainStep(net, loss, reg, opt, x, y, lambda)
				// Host sync: the loss values, to catch a divergence at once.
				lv = lb.Float64Values(true)[0]
				if r != nil {
					rv = r.Float64Values(true)[0]
				}
			})
			if err != nil {
				stop()
				return sum, stopped(fmt.Errorf("epoch %d step %d: %w", epoch+1, b+1, err))
			}
			if math.IsNaN(lv) || math.IsInf(lv, 0) || math.IsNaN(rv) || math.IsInf(rv, 0) {
				stop()
				return sum, fmt.Errorf("epoch %d step %d: loss is %v (R %v): %w; %s (lower --lr?)",
					epoch+1, b+1, lv, rv, ErrDiverged, lastGood(ckptPath))
			}
			st.LossSum += lv * float64(hi-lo)
			st.RegSum += rv * float64(hi-lo)
			st.Seen += hi - lo
			st.Step = b + 1
			if progress != nil {
				elapsed := time.Since(epochStart).Seconds()
				rate := float64(st.Seen-seenAtStart) / elapsed
				left := float64((c.Epochs-epoch)*nTrain-st.Seen) / rate
				fmt.Fprintf(progress, "\repoch %d/%d  step %d/%d  loss %.4f  %.0f img/s  ETA %s   ",
					epoch+1, c.Epochs, b+1, batches, st.LossSum/float64(st.Seen), rate, (time.Duration(left) * time.Second).Round(time.Second))
			}
			if ctx.Err() != nil {
				stop()
				return sum, stopped(ErrInterrupted)
			}
		}
		stop()
		line := EpochLog{Epoch: epoch + 1, LR: opt.LR, Lambda: lambda,
			LossBal: st.LossSum / float64(max(st.Seen, 1)), LossLWR: st.RegSum / float64(max(st.Seen, 1)),
			Seconds: time.Since(epochStart).Seconds()}
		line.ImagesSec = float64(st.Seen-seenAtStart) / line.Seconds
		line.DataWait = wait.Seconds()
		if (epoch+1)%c.EvalEvery == 0 || epoch+1 == c.Epochs {
			m, err := evaluate(ctx, net, testSrc, c.BatchSize*2, counts)
			if errors.Is(err, ErrInterrupted) {
				return sum, stopped(err)
			}
			var le *libtorch.Error
			if errors.As(err, &le) {
				return sum, stopped(fmt.Errorf("epoch %d evaluation: %w", epoch+1, err))
			}
			if err != nil {
				return sum, err
			}
			if m.NonFinite > 0 {
				return sum, fmt.Errorf("epoch %d: %d of %d test images got NaN or infinite outputs: the network has %w; %s (lower --lr?)",
					epoch+1, m.NonFinite, len(testSrc.Labels()), ErrDiverged, lastGood(ckptPath))
			}
			line.Test = &m
			final = m
			if err := libtorch.Catch(func() { finalWeights = lwr.WeightStats(net.Head().Weight, c.LWRConfig.Theta) }); err != nil {
				return sum, stopped(fmt.Errorf("epoch %d classifier statistics: %w", epoch+1, err))
			}
			line.Weights = &finalWeights
		}
		if err := appendJSONL(logPath, line); err != nil {
			return sum, err
		}
		st = State{ConfigHash: st.ConfigHash, Config: c, Epoch: epoch + 1}
		if err := checkpoint(); err != nil {
			return sum, err
		}
		if progress != nil {
			fmt.Fprint(progress, "\r\033[K")
			if line.Test != nil {
				fmt.Fprintf(progress, "epoch %d/%d  loss %.4f  R %.3f  top-1 %s  many %s  medium %s  few %s\n",
					epoch+1, c.Epochs, line.LossBal, line.LossLWR, line.Test.Top1, line.Test.Many, line.Test.Medium, line.Test.Few)
			}
		}
		if ctx.Err() != nil {
			return sum, ErrInterrupted
		}
	}
	if final.PerClass == nil { // resumed a run that had already finished: nothing was evaluated
		if final, err = evaluate(ctx, net, testSrc, c.BatchSize*2, counts); err != nil {
			return sum, err
		}
		finalWeights = lwr.WeightStats(net.Head().Weight, c.LWRConfig.Theta)
	}
	sum.Final = final
	sum.Seconds = elapsed()
	if err := writeJSON(filepath.Join(c.Out, SummaryFile), sum); err != nil {
		return sum, err
	}
	if err := writePlots(c, sum, finalWeights); err != nil {
		return sum, err
	}
	return sum, nil
}

// writePlots draws the run's pictures into c.Out from summary.json's
// metrics, log.jsonl's curves and the classifier's cosine matrix.
func writePlots(c Config, sum Summary, ws lwr.Stats) error {
	acc := make([]float64, len(sum.Final.PerClass))
	for i, v := range sum.Final.PerClass {
		acc[i] = float64(v)
	}
	title := fmt.Sprintf("%s, %s", c.Dataset, c.Loss.Name)
	if c.LWR {
		title += " + LWR"
	}
	if err := report.AccuracyByCount(filepath.Join(c.Out, "accuracy_by_count.png"), sum.TrainCounts, acc, title); err != nil {
		return err
	}
	if err := report.CosineMatrix(filepath.Join(c.Out, "cosine_matrix.png"), ws.Cos, "classifier rows: cos(w_i, w_j), "+title); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(c.Out, "log.jsonl"))
	if err != nil {
		return err
	}
	var curves []report.Curve
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l EpochLog
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &l) != nil {
			continue
		}
		cv := report.Curve{Epoch: l.Epoch, LossBal: l.LossBal, LossLWR: l.LossLWR, LR: l.LR, Top1: math.NaN()}
		if l.Test != nil {
			cv.Top1 = float64(l.Test.Top1)
		}
		curves = append(curves, cv)
	}
	return report.Curves(filepath.Join(c.Out, "curves.png"), curves, title)
}

// trainStep runs forward, the loss L_bal + λ·R, backward and the SGD step,
// and returns L_bal and R (nil without LWR), detached, for logging.
func trainStep(net resnet.Net, loss losses.Loss, reg *lwr.Regularizer, opt *optim.SGD, x, y *ts.Tensor, lambda float64) (lb, r *ts.Tensor) {
	var s libtorch.Scope
	defer s.Free()
	logits, feat := net.ForwardT(x, true)
	s.Keep(logits)
	s.Keep(feat)
	var bal *ts.Tensor
	if fl, ok := loss.(losses.FeatureLoss); ok {
		bal = s.Keep(fl.LossWithFeatures(logits, y, feat))
	} else {
		bal = s.Keep(loss.Loss(logits, y))
	}
	total := bal
	if reg != nil {
		rt := s.Keep(reg.Loss(net.Head().Weight))
		r = rt.MustDetach(false)
		if lambda != 0 {
			total = s.Keep(bal.MustAdd(s.Keep(rt.MustMulScalar(ts.FloatScalar(lambda), false)), false))
		}
	}
	total.MustBackward()
	opt.Step()
	return bal.MustDetach(false), r
}

// evaluate classifies every image of src in eval mode and returns the
// metrics, grouping classes by trainCounts. It stops with ErrInterrupted
// between batches when ctx is done, and returns a libtorch error as a
// *libtorch.Error.
func evaluate(ctx context.Context, net resnet.Net, src source, batch int, trainCounts []int64) (metrics.Metrics, error) {
	ev := metrics.NewEvaluation(src.Classes())
	order := make([]int64, len(src.Labels()))
	for i := range order {
		order[i] = int64(i)
	}
	var err error
	libtorch.NoGrad(func() {
		next, stop := src.Batches(ctx, order, batch, false, nil, 0, 0, 0)
		defer stop()
		for {
			var x, y *ts.Tensor
			x, y, err = next()
			if err == nil && x == nil && ctx.Err() != nil {
				err = ErrInterrupted
			}
			if err != nil || x == nil {
				return
			}
			err = libtorch.Catch(func() {
				defer x.MustDrop()
				logits, feat := net.ForwardT(x, false)
				feat.MustDrop()
				probs := logits.MustSoftmax(1, gotch.Double, true).MustTo(gotch.CPU, true)
				ev.Add(probs.Float64Values(true), y.MustTo(gotch.CPU, true).Int64Values(true)) // host sync
			})
			if err == nil && ctx.Err() != nil {
				err = ErrInterrupted
			}
			if err != nil {
				return
			}
		}
	})
	return ev.Metrics(trainCounts), err
}

func isLDAM(name string) bool { return name == "ldam" || name == "ldam-drw" }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return data.WriteFileAtomic(path, append(b, '\n'))
}

// appendJSONL appends one JSON line to path and syncs it.
func appendJSONL(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// truncateLog keeps the lines of log.jsonl for epochs ≤ last.
func truncateLog(path string, last int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var kept []byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		var l struct{ Epoch int }
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &l) != nil || l.Epoch > last {
			continue
		}
		kept = append(kept, line...)
	}
	return data.WriteFileAtomic(path, kept)
}
