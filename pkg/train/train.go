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
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/dist"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/losses"
	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/optim"
	"github.com/lwr-go/lwr/pkg/regularfile"
	"github.com/lwr-go/lwr/pkg/report"
	"github.com/lwr-go/lwr/pkg/resnet"
	"github.com/lwr-go/lwr/pkg/tensorboard"
)

// EpochLog is one line of log.jsonl.
type EpochLog struct {
	Epoch     int     `json:"epoch"` // counting from 1
	LR        float64 `json:"lr"`
	Lambda    float64 `json:"lambda"`   // λ(t) of R (0 without LWR)
	LossBal   float64 `json:"loss_bal"` // mean balanced loss over the epoch's batches
	LossLWR   float64 `json:"loss_lwr"` // mean R (before λ)
	ImagesSec float64 `json:"images_per_sec"`
	DataWait  float64 `json:"data_wait_seconds"` // time spent getting batches: JPEG decoding not keeping up, or in-memory augmentation
	Seconds   float64 `json:"seconds"`           // the epoch's training, evaluation excluded
	// EvalSeconds is the time of the epoch's evaluation on the test set
	// (epochs that evaluate, see --eval-every).
	EvalSeconds float64 `json:"eval_seconds,omitempty"`
	// CommSeconds is rank 0's time in collectives (a data-parallel run:
	// the buffers' broadcast, the gradients' allreduce, the step's flags).
	CommSeconds float64          `json:"comm_seconds,omitempty"`
	Test        *metrics.Metrics `json:"test,omitempty"`
	Weights     *lwr.Stats       `json:"classifier,omitempty"`
}

// Summary is summary.json: the final result of a run (config.Summary).
type Summary = config.Summary

// ErrInterrupted reports a run stopped by its context (SIGINT/SIGTERM)
// after checkpointing; it can be resumed.
var ErrInterrupted = errors.New("interrupted; checkpoint written, continue with --resume")

// Run trains c, writing config.json, log.jsonl, train.log, checkpoint.pt
// and summary.json to c.Out, and returns the final metrics. con (may be
// nil) gets train.log's lines as they are written, and on a terminal a
// live progress line; obs follow every training step (Observer). Cancelling ctx stops at the next step
// boundary (of training or of evaluation), checkpoints and returns
// ErrInterrupted. A libtorch error in a step or an evaluation checkpoints
// the last completed step and returns the error; a divergence (NaN or
// infinite losses, weights or test outputs) returns an ErrDiverged error
// and leaves the last good checkpoint as it was.
func Run(ctx context.Context, c Config, con *Console, obs ...Observer) (Summary, error) {
	var sum Summary
	if err := c.Validate(); err != nil {
		return sum, err
	}
	err := libtorch.OnThread(func() error {
		var err error
		sum, err = run(ctx, c, con, obs)
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

// bnTrain is the batch-norm mode of training steps: true but in a test
// that compares data-parallel and single-process steps exactly (batch
// statistics depend on how a batch is split).
var bnTrain = true

// warnf prints a warning line to stderr.
func warnf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// useThreads sizes libtorch's CPU thread pool: n threads, or every core
// when n is 0. Not libtorch's own default: on some machines (this
// project's 2-core VM) it starts with one thread.
func useThreads(n int) {
	if n == 0 {
		n = runtime.NumCPU()
	}
	libtorch.SetNumThreads(n)
}

// runner is one run in progress: its settings, data, network, loss,
// optimiser and position, and the folder it owns.
type runner struct {
	c                 Config
	log               *runLog             // train.log and the console: the lead rank's; nil on the others
	tb                *tensorboard.Writer // the run's event file (lead rank, --tensorboard); nil for none
	trained           int                 // epochs trained by this process
	changed           []string            // what differs from the run's start in this process (Provenance.Changes), on resume
	obs               observers           // every training step's observers, the log's progress lines last
	dir               *runDir
	train, test       source
	subset            []int64 // indices of the training subset in the full set; nil for none
	counts            []int64 // training images per class
	vs                *nn.VarStore
	net               resnet.Net
	reg               *lwr.Regularizer // nil without LWR
	loss              losses.Loss
	opt               *optim.SGD
	st                State
	ckptPath, logPath string
	start             time.Time // this process's start
	before            float64   // the run's seconds before this process
	final             metrics.Metrics
	weights           lwr.Stats    // of the last evaluation
	g                 *dist.Group  // the run's workers (dist.Single() on its own)
	buffers           []*ts.Tensor // batch-norm statistics, broadcast from rank 0 before each step of a data-parallel run
	writing           chan error   // the result of the checkpoint being written on another thread; nil when none
}

// run is the whole of Run on the training thread: open, start or
// restore, the epochs, the summary.
func run(ctx context.Context, c Config, con *Console, obs []Observer) (sum Summary, err error) {
	g := c.Dist
	if g == nil {
		g = dist.Single()
	}
	r, err := openRunner(c, g, con, obs)
	if err := agree(g, err); err != nil {
		if r != nil {
			r.log.close()
			r.dir.close()
		}
		return Summary{Config: c.Run}, err
	}
	defer r.dir.close()
	defer func() {
		if lerr := r.log.close(); err == nil {
			err = lerr
		}
	}()
	defer func() { // every return waits for the checkpoint being written
		if werr := r.waitCheckpoint(); werr != nil {
			if err == nil {
				err = werr
			} else {
				err = fmt.Errorf("%w (and the last checkpoint: %v)", err, werr)
			}
		}
	}()
	err = r.startOrRestore()
	if err == nil {
		if r.st.Epoch >= c.Epochs {
			r.log.printf("resumed a finished run (%s): evaluating it again", c.Out)
		} else if r.st.Epoch > 0 || r.st.Step > 0 {
			r.log.printf("resumed at epoch %d/%d step %d (%s)", r.st.Epoch+1, c.Epochs, r.st.Step+1, c.Out)
		}
		if r.st.Epoch > 0 || r.st.Step > 0 {
			for _, ch := range r.changed {
				r.log.printf("resumed with another %s", ch)
			}
		} else {
			r.log.printf("started: %d epochs, seed %d (%s)", c.Epochs, c.Seed, c.Out)
		}
		err = r.broadcastState()
	}
	if err == nil && r.lead() && c.TensorBoard {
		done := -1 // a new run: its event file starts empty
		if r.st.Epoch > 0 || r.st.Step > 0 {
			done = r.st.Epoch
		}
		r.tb, err = openEvents(c, done)
	}
	defer func() {
		if r.tb == nil {
			return
		}
		if terr := r.tb.Close(); err == nil {
			err = terr
		}
	}()
	if err == nil {
		r.net, err = inMemoryFormat(c.memoryFormat(r.vs.Device()), r.vs, r.opt, r.net)
	}
	if err == nil {
		var net resnet.Net
		var done func()
		if net, done, err = frozenNet(r.net, c.FusedEval); err == nil {
			r.net = net
			defer done()
		}
	}
	if err == nil && c.FusedEval == FusedOn {
		// Said now, not after the first epochs.
		var done func()
		if _, done, err = evalNet(r.net, FusedOn); err == nil {
			done()
		}
	}
	if err := agree(g, err); err != nil {
		return r.summary(), err
	}
	for epoch := r.st.Epoch; epoch < c.Epochs; epoch++ {
		line, err := r.trainEpoch(ctx, epoch)
		if err != nil {
			return r.summary(), err
		}
		if (epoch+1)%c.EvalEvery == 0 || epoch+1 == c.Epochs {
			if err := r.evaluateEpoch(ctx, epoch, &line); err != nil {
				return r.summary(), err
			}
		}
		if err := r.endEpoch(epoch, line); err != nil {
			return r.summary(), err
		}
		if ctx.Err() != nil {
			return r.summary(), ErrInterrupted
		}
	}
	if err := r.waitCheckpoint(); err != nil { // the last epoch's, before summary.json
		return r.summary(), err
	}
	return r.finish(ctx)
}

// openRunner sets up the device and its threads, the data, the run folder
// (after the data: a data error leaves nothing behind) and the network,
// regularizer, loss and optimiser, seeded.
func openRunner(c Config, g *dist.Group, con *Console, obs []Observer) (*runner, error) {
	r := &runner{c: c, g: g, start: time.Now(), obs: obs,
		ckptPath: filepath.Join(c.Out, CheckpointFile), logPath: filepath.Join(c.Out, LogFile)}
	if c.Quiet {
		con = nil
	}
	dev, err := libtorch.ParseDevice(c.Device)
	if err != nil {
		return nil, fmt.Errorf("--device: %w", err)
	}
	useThreads(c.Threads)
	if r.train, r.test, r.subset, err = sources(c, dev); err != nil {
		return nil, err
	}
	if r.lead() {
		if r.dir, err = openRunDir(c, warnf); err != nil {
			return nil, err
		}
		if r.log, err = openRunLog(c.Out, con, c.LogEvery); err != nil {
			r.dir.close()
			return nil, err
		}
		r.obs = append(r.obs[:len(r.obs):len(r.obs)], r.log)
	}
	fail := func(err error) (*runner, error) {
		r.log.close()
		r.dir.close()
		return nil, err
	}
	r.counts = r.train.Counts()
	if err := r.initNetwork(dev); err != nil {
		return fail(err)
	}
	if r.loss, err = losses.New(c.Loss, r.counts); err != nil {
		return fail(err)
	}
	_, params := trainableParams(r.vs)
	if r.opt, err = optim.NewSGD(params, c.LR, c.Momentum, c.WeightDecay, c.Nesterov); err != nil {
		return fail(err)
	}
	r.st = State{ConfigHash: c.Hash(), Config: c}
	if g.Distributed() {
		_, r.buffers = sortedVars(r.vs)
	}
	return r, nil
}

// seeding serialises the seeded initialisation of runs in one process:
// libtorch's generator is global, and runs trained side by side (--parallel)
// must each draw their initial weights alone to be reproducible.
var seeding sync.Mutex

// initNetwork builds the network (and the LWR projection) on dev from the
// run's seed.
func (r *runner) initNetwork(dev gotch.Device) error {
	seeding.Lock()
	defer seeding.Unlock()
	c := r.c
	libtorch.ManualSeed(c.Seed)
	r.vs = nn.NewVarStore(dev)
	var err error
	if r.net, err = buildNetwork(r.vs, c, r.train); err != nil {
		return err
	}
	if c.LWR {
		dim := r.net.Head().Weight.MustSize()[1]
		if r.reg, err = lwr.New(r.vs.Root().Sub("lwr"), dim, c.LWRConfig); err != nil {
			return err
		}
	}
	return nil
}

// buildNetwork builds c.Model for src's classes and channels in vs, as
// stage two of decoupled training when c.Stage2 is set.
func buildNetwork(vs *nn.VarStore, c Config, src source) (resnet.Net, error) {
	net, err := newModel(vs.Root(), c, src)
	if err != nil || c.Stage2 == "" {
		return net, err
	}
	d := decoupled{Net: net}
	if c.Stage2 == "lws" {
		one := ts.MustOnes([]int64{int64(src.Classes())}, gotch.DefaultDType, vs.Device())
		d.scale = vs.Root().Sub("lws").MustAdd("scale", one, true)
		one.MustDrop()
	}
	return d, nil
}

// decoupled is stage two of decoupled training (Kang et al. 2020): the
// backbone frozen in eval mode (no gradient, its batch-norm statistics
// fixed) and the classifier retrained (cRT), or its logits rescaled per
// class by trained scales, logits·s with s [C] from 1, the classifier
// frozen too (LWS). Parameters without a gradient are left alone by the
// optimiser, so freezing needs nothing more.
type decoupled struct {
	resnet.Net
	scale *ts.Tensor // [C] for LWS; nil for cRT
}

func (d decoupled) ForwardT(x *ts.Tensor, train bool) (logits, feat *ts.Tensor) {
	libtorch.NoGrad(func() {
		l, f := d.Net.ForwardT(x, false)
		l.MustDrop()
		feat = f
		if d.scale != nil {
			logits = d.Net.Head().Forward(feat)
		}
	})
	if d.scale == nil {
		return d.Net.Head().Forward(feat), feat
	}
	return logits.MustMul(d.scale, true), feat
}

// headName is the prefix of the classifier's variables: linear (ResNet-32,
// LDAM-DRW's name) or fc (torchvision's).
func headName(c Config) string {
	if c.Model == "resnet32" {
		return "linear."
	}
	return "fc."
}

// startOrRestore continues from the folder's checkpoint (--resume) or
// writes a new run's config.json, empty log and subset list. A run stopped
// before its first checkpoint starts again.
func (r *runner) startOrRestore() error {
	c := r.c
	if c.Resume && !exists(r.ckptPath) && !exists(filepath.Join(c.Out, PrevCheckpoint)) {
		var saved Config
		b, err := regularfile.ReadFile(filepath.Join(c.Out, ConfigFile), config.MaxJSONBytes, "config files")
		if err == nil {
			err = json.Unmarshal(b, &saved)
		}
		if err != nil {
			return fmt.Errorf("--resume: %s has no checkpoint, and its %s is unreadable: %v", c.Out, ConfigFile, err)
		}
		if err := describeDiff(filepath.Join(c.Out, ConfigFile), saved, c); err != nil {
			return err
		}
		warnf("%s: no checkpoint yet (stopped in its first epoch): starting the run again", c.Out)
		c.Resume = false
	}
	if !c.Resume {
		if c.InitFrom != "" {
			var keep func(string) bool
			if c.Stage2 == "crt" { // the classifier is drawn anew
				keep = func(name string) bool { return strings.HasPrefix(name, headName(c)) }
			}
			if err := importWeights(r.vs, c.InitFrom, isLDAM(c.Loss.Name), keep); err != nil {
				return fmt.Errorf("--init-from: %w", err)
			}
		}
		if !r.lead() {
			return nil
		}
		if r.subset != nil {
			// The subset as a list file, "index label" per line, like
			// ImageNet-LT's: what other code (bench/torch_train.py) trains on.
			if err := data.WriteIndexList(filepath.Join(c.Out, SubsetFile), r.subset, r.train.Labels()); err != nil {
				return err
			}
		}
		p := newProvenance(c, r.vs.Device())
		c.Provenance, r.c.Provenance, r.st.Config.Provenance = &p, &p, &p
		if err := writeJSON(filepath.Join(c.Out, ConfigFile), c); err != nil {
			return err
		}
		return atomicfile.WriteFile(r.logPath, nil)
	}
	path, saved, named, err := readLatestCheckpoint(c.Out, warnf)
	if err != nil {
		return err
	}
	if err := describeDiff(path, saved.Config, c); err != nil {
		return err
	}
	if err := loadCheckpoint(path, named, r.vs, r.opt); err != nil {
		return err
	}
	r.st = saved
	r.st.Config = c
	r.before = saved.Seconds
	if was := saved.Config.Provenance; was != nil { // the run keeps where it started
		r.changed = was.Changes(newProvenance(c, r.vs.Device()))
		r.c.Provenance, r.st.Config.Provenance = was, was
	}
	if !r.lead() {
		return nil
	}
	// A kill between the log line and the checkpoint of an epoch leaves a
	// line the resumed run writes again: keep the log in step.
	return truncateLog(r.logPath, r.st.Epoch)
}

// elapsed is the run's seconds over all its processes.
func (r *runner) elapsed() float64 { return r.before + time.Since(r.start).Seconds() }

// checkpoint writes the position after the last completed step and
// returns once it is on disk.
func (r *runner) checkpoint() error {
	if err := r.checkpointAsync(); err != nil {
		return err
	}
	return r.waitCheckpoint()
}

// checkpointAsync copies the position after the last completed step (an
// ErrDiverged error if it is not finite) and writes it on another thread
// while training goes on, after the write before it has ended; its error
// comes from the next checkpoint, the next epoch's end or the run's return.
func (r *runner) checkpointAsync() error {
	if err := r.waitCheckpoint(); err != nil {
		return err
	}
	if !r.lead() {
		return nil
	}
	r.st.Seconds = r.elapsed()
	s, err := takeSnapshot(r.ckptPath, r.vs, r.opt, r.st)
	if err != nil {
		return err
	}
	done, path := make(chan error, 1), r.ckptPath
	go func() {
		done <- libtorch.OnThread(func() error {
			defer s.free()
			return s.write(path)
		})
	}()
	r.writing = done
	return nil
}

// waitCheckpoint waits for the checkpoint being written, if any, and
// returns its error.
func (r *runner) waitCheckpoint() error {
	if r.writing == nil {
		return nil
	}
	err := <-r.writing
	r.writing = nil
	return err
}

// stopped checkpoints the last completed step after err (an interrupt, a
// libtorch error) and returns err, saying where the run stands.
func (r *runner) stopped(err error) error {
	if cerr := r.checkpoint(); cerr != nil {
		return fmt.Errorf("%w (and no checkpoint: %v)", err, cerr)
	}
	if errors.Is(err, ErrInterrupted) {
		return err
	}
	return fmt.Errorf("%w; %s holds epoch %d step %d: continue with --resume", err, r.ckptPath, r.st.Epoch+1, r.st.Step)
}

// trainEpoch runs the steps of epoch left to do (all of them, or the rest
// of an interrupted epoch) and returns its log line without test metrics.
// The schedule (lr, DRW/IB switch, λ) and the randomness (order,
// augmentation) are pure functions of the epoch, so a resumed epoch is the
// same epoch.
func (r *runner) trainEpoch(ctx context.Context, epoch int) (EpochLog, error) {
	c, st := r.c, &r.st
	r.opt.LR = LearningRate(c, epoch)
	if e, ok := r.loss.(losses.EpochSetter); ok {
		e.SetEpoch(epoch)
	}
	lambda := 0.0
	if r.reg != nil {
		lambda, _ = c.LWRSchedule.Weight(epoch, c.Epochs)
	}
	order, rng, err := r.epochOrder(epoch)
	if err != nil {
		return EpochLog{}, err
	}
	batch := c.BatchSize / r.g.World // this rank's share of the global batch
	if len(order)%batch == 1 && len(order) > 1 {
		// A last batch of one image would give batch norm a variance of
		// 0/0 and NaN running statistics (PyTorch refuses such a batch):
		// leave that image out of this epoch's random order.
		order = order[:len(order)-1]
	}
	batches := (len(order) + batch - 1) / batch
	nTrain := len(r.train.Labels())
	epochStart := time.Now()
	seenAtStart := st.Seen
	next, stop := r.train.Batches(ctx, order, batch, c.Augment, rng, uint64(c.Seed)^uint64(r.g.Rank)<<40, epoch, st.Step)
	defer stop()
	var wait, comm time.Duration
	for b := st.Step; b < batches; b++ {
		lo, hi := b*batch, min((b+1)*batch, len(order))
		t0 := time.Now()
		var x, y *ts.Tensor
		if cerr := libtorch.Catch(func() { x, y, err = next() }); cerr != nil { // the copy to the device can fail
			return EpochLog{}, r.stopped(fmt.Errorf("epoch %d step %d: data: %w", epoch+1, b+1, cerr))
		}
		wait += time.Since(t0)
		if err == nil && x == nil && ctx.Err() != nil { // interrupted while decoding
			return EpochLog{}, r.stopped(ErrInterrupted)
		}
		if err == nil && x == nil {
			err = fmt.Errorf("epoch %d: the data ended after %d of %d batches", epoch+1, b, batches)
		}
		if err != nil {
			return EpochLog{}, err
		}
		var lv, rv float64
		err = libtorch.Catch(func() {
			defer x.MustDrop()
			defer y.MustDrop()
			r.obs.beforeStep(epoch, b)
			var sync func() error
			if sync, err = r.dataParallel(&comm); err != nil {
				return
			}
			var lb, rt *ts.Tensor
			if lb, rt, err = trainStepSync(r.net, r.loss, r.reg, r.opt, x, y, lambda, sync); err != nil {
				return
			}
			// Host sync: the loss values, to catch a divergence at once.
			lv = lb.Float64Values(true)[0]
			if rt != nil {
				rv = rt.Float64Values(true)[0]
			}
		})
		if err != nil {
			if dist.IsCollective(err) { // the group is gone: no checkpoint of a half step
				return EpochLog{}, fmt.Errorf("epoch %d step %d: %w; %s", epoch+1, b+1, err, lastGood(r.ckptPath))
			}
			return EpochLog{}, r.stopped(fmt.Errorf("epoch %d step %d: %w", epoch+1, b+1, err))
		}
		// The observers see the step before the ranks agree on stopping, so
		// that one cancelling the run (StopAfter) stops it after this step.
		if len(r.obs) > 0 {
			seen := st.Seen + hi - lo
			rate := float64(seen-seenAtStart) * float64(r.g.World) / time.Since(epochStart).Seconds()
			left := float64((c.Epochs-epoch)*nTrain-seen) / rate
			r.obs.afterStep(Step{Epoch: epoch, Epochs: c.Epochs, Batch: b, Batches: batches,
				Loss: (st.LossSum + lv*float64(hi-lo)) / float64(seen), ImagesSec: rate, Left: time.Duration(left) * time.Second, Vars: r.vs})
		}
		interrupted, aerr := r.agreeAfterStep(ctx, epoch, b, lv, rv, &comm)
		if aerr != nil {
			return EpochLog{}, aerr
		}
		st.LossSum += lv * float64(hi-lo)
		st.RegSum += rv * float64(hi-lo)
		st.Seen += hi - lo
		st.Step = b + 1
		if interrupted {
			return EpochLog{}, r.stopped(ErrInterrupted)
		}
	}
	// The epoch's means over every rank's images.
	sums, err := sumOver(r.g, []float64{st.LossSum, st.RegSum, float64(st.Seen), float64(st.Seen - seenAtStart)})
	if err != nil {
		return EpochLog{}, err
	}
	line := EpochLog{Epoch: epoch + 1, LR: r.opt.LR, Lambda: lambda,
		LossBal: sums[0] / math.Max(sums[2], 1), LossLWR: sums[1] / math.Max(sums[2], 1),
		Seconds: time.Since(epochStart).Seconds(), DataWait: wait.Seconds(), CommSeconds: comm.Seconds()}
	line.ImagesSec = sums[3] / line.Seconds
	return line, nil
}

// dataParallel prepares a data-parallel step: rank 0's batch-norm buffers
// broadcast to every rank, and the function that averages the gradients
// over the ranks between backward and the SGD step. Both add their time to
// comm. On its own, a run gets a nil function.
func (r *runner) dataParallel(comm *time.Duration) (sync func() error, err error) {
	if !r.g.Distributed() {
		return nil, nil
	}
	t0 := time.Now()
	if err := r.g.Broadcast(r.buffers, 0); err != nil {
		return nil, err
	}
	*comm += time.Since(t0)
	return func() error {
		grads := gradients(r.opt.Params)
		defer func() {
			for _, g := range grads {
				g.MustDrop()
			}
		}()
		t0 := time.Now()
		defer func() { *comm += time.Since(t0) }()
		return r.g.AllReduceMean(grads)
	}, nil
}

// agreeAfterStep has every rank stop after the same step: when any was
// interrupted (ctx) or saw a non-finite loss (lv, rv). A divergence is an
// ErrDiverged error naming the step; interrupted says to stop with a
// checkpoint. Its collective's time adds to comm.
func (r *runner) agreeAfterStep(ctx context.Context, epoch, b int, lv, rv float64, comm *time.Duration) (interrupted bool, err error) {
	t0 := time.Now()
	flags, err := anyRank(r.g, ctx.Err() != nil, math.IsNaN(lv) || math.IsInf(lv, 0) || math.IsNaN(rv) || math.IsInf(rv, 0))
	if err != nil {
		return false, fmt.Errorf("epoch %d step %d: %w; %s", epoch+1, b+1, err, lastGood(r.ckptPath))
	}
	if r.g.Distributed() {
		*comm += time.Since(t0)
	}
	if flags[1] {
		return false, fmt.Errorf("epoch %d step %d: loss is %v (R %v): %w; %s (lower --lr?)",
			epoch+1, b+1, lv, rv, ErrDiverged, lastGood(r.ckptPath))
	}
	return flags[0], nil
}

// evaluateEpoch scores the network on the test set after epoch and adds
// the metrics and the classifier's statistics to line. Non-finite outputs
// stop the run (ErrDiverged) without a checkpoint.
func (r *runner) evaluateEpoch(ctx context.Context, epoch int, line *EpochLog) error {
	start := time.Now()
	m, err := r.evaluate(ctx)
	line.EvalSeconds = time.Since(start).Seconds()
	if errors.Is(err, ErrInterrupted) {
		return r.stopped(err)
	}
	var le *libtorch.Error
	if errors.As(err, &le) {
		return r.stopped(fmt.Errorf("epoch %d evaluation: %w", epoch+1, err))
	}
	if err != nil {
		return err
	}
	if m.NonFinite > 0 {
		return fmt.Errorf("epoch %d: %d of %d test images got NaN or infinite outputs: the network has %w; %s (lower --lr?)",
			epoch+1, m.NonFinite, len(r.test.Labels()), ErrDiverged, lastGood(r.ckptPath))
	}
	if err := libtorch.Catch(func() { r.weights = lwr.WeightStats(r.net.Head().Weight, r.c.LWRConfig.Theta) }); err != nil {
		return r.stopped(fmt.Errorf("epoch %d classifier statistics: %w", epoch+1, err))
	}
	r.final = m
	line.Test = &m
	line.Weights = &r.weights
	return nil
}

// endEpoch appends the epoch's log line, starts the checkpoint of the next
// epoch's start (written while that epoch trains) and prints the epoch's
// line.
func (r *runner) endEpoch(epoch int, line EpochLog) error {
	// The epoch before's checkpoint first, then this epoch's log line:
	// the log never runs more than one epoch ahead of the checkpoint.
	if err := r.waitCheckpoint(); err != nil {
		return err
	}
	if r.lead() {
		if err := appendJSONL(r.logPath, line); err != nil {
			return err
		}
		if r.tb != nil {
			if err := writeEpochEvents(r.tb, line); err != nil {
				return err
			}
		}
	}
	r.trained++
	r.st = State{ConfigHash: r.st.ConfigHash, Config: r.c, Epoch: epoch + 1}
	if err := r.checkpointAsync(); err != nil {
		return err
	}
	r.log.epoch(r.c.Epochs, line)
	return r.log.err()
}

// summary is the run's Summary so far.
func (r *runner) summary() Summary {
	sum := Summary{Config: r.c.Run, TrainCounts: r.counts, Final: r.final, Seconds: r.elapsed()}
	if r.weights.Cos != nil {
		ws := r.weights
		sum.Classifier, sum.CosineHistogram = &ws, report.CosineHistogram(ws.Cos)
	}
	return sum
}

// evaluate runs one evaluation pass over the test set, with the network
// folded for it as --fused-eval says.
func (r *runner) evaluate(ctx context.Context) (metrics.Metrics, error) {
	net, done, err := evalNet(r.net, r.c.FusedEval)
	if err != nil {
		return metrics.Metrics{}, err
	}
	defer done()
	return evaluateOn(ctx, r.g, net, r.test, r.c.evalBatch(r.vs.Device()), r.counts)
}

// finish writes summary.json and the plots. A resumed run that had
// already finished is evaluated again first.
func (r *runner) finish(ctx context.Context) (Summary, error) {
	if r.final.PerClass == nil {
		var err error
		if r.final, err = r.evaluate(ctx); err != nil {
			return r.summary(), err
		}
		r.weights = lwr.WeightStats(r.net.Head().Weight, r.c.LWRConfig.Theta)
	}
	sum := r.summary()
	if !r.lead() {
		return sum, nil
	}
	if err := writeJSON(filepath.Join(r.c.Out, SummaryFile), sum); err != nil {
		return sum, err
	}
	if err := writePlots(r.c, sum, r.weights); err != nil {
		return sum, err
	}
	if r.tb != nil && r.trained > 0 { // once: a finished run resumed again draws them anew, but has them in its events
		return sum, writeFigureEvents(r.tb, r.c.Out, int64(r.c.Epochs))
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
	if err := report.AccuracyByCount(filepath.Join(c.Out, "accuracy_by_count.png"), sum.TrainCounts, acc, data.ClassNames(c.Dataset), title); err != nil {
		return err
	}
	if err := report.CosineMatrix(filepath.Join(c.Out, "cosine_matrix.png"), ws.Cos, data.ClassNames(c.Dataset), "classifier rows: cos(w_i, w_j), "+title); err != nil {
		return err
	}
	if err := report.NormsByCount(filepath.Join(c.Out, "norms.png"), sum.TrainCounts, []report.Series{{Label: title, Mean: ws.Norms}},
		"classifier row norms by training count, "+title); err != nil {
		return err
	}
	if cal := sum.Final.Calibration; len(cal) > 0 {
		bins := make([]report.Bin, len(cal))
		for k, b := range cal {
			bins[k] = report.Bin{Lo: float64(k) / float64(len(cal)), Hi: float64(k+1) / float64(len(cal)), Count: b.Count, Confidence: b.Confidence, Accuracy: b.Accuracy}
		}
		if err := report.Reliability(filepath.Join(c.Out, "reliability.png"), bins, float64(sum.Final.ECE), "reliability, "+title); err != nil {
			return err
		}
	}
	b, err := regularfile.ReadFile(filepath.Join(c.Out, "log.jsonl"), maxLogBytes, "a run's log.jsonl")
	if err != nil {
		return err
	}
	var curves []report.Curve
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l EpochLog
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &l) != nil {
			continue
		}
		cv := report.Curve{Epoch: l.Epoch, LossBal: l.LossBal, LossLWR: l.LossLWR, Lambda: l.Lambda, LR: l.LR,
			Top1: math.NaN(), Many: math.NaN(), Medium: math.NaN(), Few: math.NaN()}
		if m := l.Test; m != nil {
			cv.Top1, cv.Many, cv.Medium, cv.Few = float64(m.Top1), float64(m.Many), float64(m.Medium), float64(m.Few)
		}
		curves = append(curves, cv)
	}
	return report.Curves(filepath.Join(c.Out, "curves.png"), curves, title)
}

// trainStep runs forward, the loss L_bal + λ·R, backward and the SGD step,
// and returns L_bal and R (nil without LWR), detached, for logging.
func trainStep(net resnet.Net, loss losses.Loss, reg *lwr.Regularizer, opt *optim.SGD, x, y *ts.Tensor, lambda float64) (lb, r *ts.Tensor) {
	lb, r, _ = trainStepSync(net, loss, reg, opt, x, y, lambda, nil)
	return lb, r
}

// trainStepSync is trainStep with sync (when not nil) run between the
// backward pass and the SGD step: a data-parallel run averages the
// gradients there. An error from sync skips the step.
func trainStepSync(net resnet.Net, loss losses.Loss, reg *lwr.Regularizer, opt *optim.SGD, x, y *ts.Tensor, lambda float64, sync func() error) (lb, r *ts.Tensor, err error) {
	var s libtorch.Scope
	defer s.Free()
	logits, feat := net.ForwardT(x, bnTrain)
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
	if sync != nil {
		if err := sync(); err != nil {
			if r != nil {
				r.MustDrop()
			}
			return nil, nil, err
		}
	}
	opt.Step()
	return bal.MustDetach(false), r, nil
}

// evaluate classifies every image of src in eval mode and returns the
// metrics, grouping classes by trainCounts. It stops with ErrInterrupted
// between batches when ctx is done, and returns a libtorch error as a
// *libtorch.Error.
func evaluate(ctx context.Context, net resnet.Net, src source, batch int, trainCounts []int64) (metrics.Metrics, error) {
	ev := metrics.NewEvaluation(src.Classes())
	err := evaluateInto(ctx, ev.Add, net, src, nil, batch)
	return ev.Metrics(trainCounts), err
}

// evaluateInto passes the softmax outputs of net on the images of src at
// order (every image, in order, when nil) to add, batch by batch.
func evaluateInto(ctx context.Context, add func(probs []float64, labels []int64), net resnet.Net, src source, order []int64, batch int) error {
	if order == nil {
		order = make([]int64, len(src.Labels()))
		for i := range order {
			order[i] = int64(i)
		}
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
				add(probs.Float64Values(true), y.MustTo(gotch.CPU, true).Int64Values(true)) // host sync
			})
			if err == nil && ctx.Err() != nil {
				err = ErrInterrupted
			}
			if err != nil {
				return
			}
		}
	})
	return err
}

func isLDAM(name string) bool { return name == "ldam" || name == "ldam-drw" }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
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

// maxLogBytes bounds log.jsonl as read back: a line per epoch of a few
// kilobytes (a few hundred epochs at most) is far below it.
const maxLogBytes = 256 << 20

// truncateLog keeps the lines of log.jsonl for epochs ≤ last.
func truncateLog(path string, last int) error {
	b, err := regularfile.ReadFile(path, maxLogBytes, "a run's log.jsonl")
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
	return atomicfile.WriteFile(path, kept)
}
