package train

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/dist"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// Data-parallel training, as PyTorch's DistributedDataParallel does it:
// every rank holds the whole network; rank 0's parameters and buffers are
// broadcast at the start and its buffers (batch-norm statistics) before
// every forward; each rank trains on its shard of the epoch with
// BatchSize / World images a step, and the gradients are averaged before
// the SGD step, so that the ranks stay bit-identical. Rank 0 alone writes.

// lead reports whether this process writes the run folder: a run on its
// own, or rank 0 of a data-parallel one.
func (r *runner) lead() bool { return r.g.Rank == 0 }

// agree makes every rank learn whether any rank failed: it returns err, or
// when this rank is fine but another is not, an error saying so. Every
// rank must call it at the same point.
func agree(g *dist.Group, err error) error {
	failed, cerr := anyRank(g, err != nil)
	switch {
	case err != nil && cerr != nil:
		return errors.Join(err, cerr)
	case err != nil:
		return err
	case cerr != nil:
		return cerr
	case failed[0]:
		return fmt.Errorf("rank %d of %d: stopping: another rank failed (its message above)", g.Rank, g.World)
	}
	return nil
}

// anyRank tells every rank, flag by flag, whether any rank set it.
func anyRank(g *dist.Group, flags ...bool) ([]bool, error) {
	vals := make([]float64, len(flags))
	for i, f := range flags {
		if f {
			vals[i] = 1
		}
	}
	sums, err := sumOver(g, vals)
	out := make([]bool, len(flags))
	for i, v := range sums {
		out[i] = v > 0
	}
	return out, err
}

// sortedVars are vs's variables in name order (the same order on every
// rank), split into trainable parameters and the rest (buffers).
func sortedVars(vs *nn.VarStore) (all, buffers []*ts.Tensor) {
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	trainable := trainableByHandle(vs)
	for _, name := range names {
		v := vars[name]
		all = append(all, &v)
		if _, ok := trainable[uintptr(v.Ctensor())]; !ok {
			buffers = append(buffers, &v)
		}
	}
	return all, buffers
}

// broadcastState copies rank 0's network, LWR projection and batch-norm
// statistics to every rank.
func (r *runner) broadcastState() error {
	if !r.g.Distributed() {
		return nil
	}
	all, _ := sortedVars(r.vs)
	return r.g.Broadcast(all, 0)
}

// epochOrder is this rank's share of epoch's training indices and the
// generator its augmentation draws from. On its own, a run's order and
// augmentation come from one generator seeded with (seed, epoch). A
// worker's instance-balanced order is DistributedSampler's (torch.randperm
// seeded with seed + epoch); the class-balanced and square-root samplers'
// orders are drawn as on its own; either is then sharded as
// DistributedSampler does. Rank r > 0 augments from (seed, epoch, r).
func (r *runner) epochOrder(epoch int) ([]int64, *rand.Rand, error) {
	c := r.c
	rng := rand.New(rand.NewPCG(uint64(c.Seed), uint64(epoch)))
	labels := r.train.Labels()
	var order []int64
	var err error
	if c.Dist != nil && (c.Sampler == string(data.InstanceBalanced) || c.Sampler == "") {
		order = dist.TorchRandperm(len(labels), uint64(c.Seed)+uint64(epoch))
	} else if order, err = data.Sampler(c.Sampler).Order(labels, r.train.Classes(), rng); err != nil {
		return nil, nil, err
	}
	if c.Dist == nil {
		return order, rng, nil
	}
	order = dist.Shard(order, r.g.Rank, r.g.World)
	if r.g.Rank > 0 {
		rng = rand.New(rand.NewPCG(uint64(c.Seed), uint64(epoch)|uint64(r.g.Rank)<<32))
	}
	return order, rng, nil
}

// sumOver adds vals over the ranks (a log line's sums).
func sumOver(g *dist.Group, vals []float64) ([]float64, error) {
	if !g.Distributed() {
		return vals, nil
	}
	var err error
	cerr := libtorch.Catch(func() {
		t := ts.MustOfSlice(vals)
		defer t.MustDrop()
		if err = g.AllReduceSum([]*ts.Tensor{t}); err == nil {
			vals = t.Float64Values()
		}
	})
	if err == nil {
		err = cerr
	}
	return vals, err
}

// evaluateOn is evaluate over the ranks of g: the test set's batches are
// dealt round-robin, each rank keeps every image's Result at its index,
// and the summed Results are added in index order — the metrics of a
// single-process evaluation, bit for bit. An interrupt is acted on after
// the evaluation, by every rank together.
func evaluateOn(ctx context.Context, g *dist.Group, net resnet.Net, src source, batch int, trainCounts []int64) (metrics.Metrics, error) {
	if !g.Distributed() {
		return evaluate(ctx, net, src, batch, trainCounts)
	}
	labels := src.Labels()
	n, classes := len(labels), src.Classes()
	order := []int64{} // not nil: a rank may have no batch at all
	for b := g.Rank; b*batch < n; b += g.World {
		for i := b * batch; i < min((b+1)*batch, n); i++ {
			order = append(order, int64(i))
		}
	}
	res := make([]float64, 5*n) // best, p(label), confidence, in the top 5, finite
	k := 0
	err := evaluateInto(context.Background(), func(probs []float64, ys []int64) {
		for i, y := range ys {
			s := metrics.Summarize(probs[i*classes:(i+1)*classes], y)
			at := 5 * order[k]
			k++
			if s.Finite {
				res[at], res[at+1], res[at+2], res[at+4] = float64(s.Best), s.PLabel, s.Conf, 1
				if s.InTop5 {
					res[at+3] = 1
				}
			}
		}
	}, net, src, order, batch)
	if err = agree(g, err); err != nil {
		return metrics.Metrics{}, err
	}
	if res, err = sumOver(g, res); err != nil {
		return metrics.Metrics{}, err
	}
	ev := metrics.NewEvaluation(classes)
	for i, y := range labels {
		v := res[5*i : 5*i+5]
		ev.AddResult(y, metrics.Result{Best: int(v[0]), PLabel: v[1], Conf: v[2], InTop5: v[3] == 1, Finite: v[4] == 1})
	}
	if stop, err := anyRank(g, ctx.Err() != nil); err != nil {
		return metrics.Metrics{}, err
	} else if stop[0] {
		return ev.Metrics(trainCounts), ErrInterrupted
	}
	return ev.Metrics(trainCounts), nil
}

// gradients are the defined gradients of params, in params' order.
func gradients(params []*ts.Tensor) []*ts.Tensor {
	var out []*ts.Tensor
	for _, p := range params {
		g := p.MustGrad(false)
		if g.MustDefined() {
			out = append(out, g)
		} else {
			g.MustDrop()
		}
	}
	return out
}
