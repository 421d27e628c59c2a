package dist

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// BucketBytes is the size of the buckets gradients are averaged in
// (DDP's bucket_cap_mb = 25).
const BucketBytes = 25 << 20

// Group is a process group: every rank of a job calls the same
// collectives in the same order. Its methods return an error naming the
// rank when a collective fails (a dead or hung peer, a timeout): the group
// is then unusable, and the run should stop.
type Group struct {
	Env
	Backend string
	Timeout time.Duration
	pg      unsafe.Pointer // nil for world size 1
}

// Available reports whether this build has a backend for more than one
// process: setup found Gloo's headers (libgloo-dev) when it adapted gotch.
func Available() bool { return csrc.DistHas("gloo") }

// Single is the group of a run on its own: every collective is a no-op.
func Single() *Group { return &Group{Env: Env{World: 1}} }

// Join connects to the job env describes over backend ("gloo"; "auto"
// picks gloo), each collective bounded by timeout. Rank 0 serves the store
// unless torchrun's agent does.
func Join(env Env, backend string, timeout time.Duration) (*Group, error) {
	if backend == "auto" {
		backend = "gloo"
	}
	g := &Group{Env: env, Backend: backend, Timeout: timeout}
	if env.World == 1 {
		return g, nil
	}
	if backend != "gloo" && backend != "nccl" {
		return nil, fmt.Errorf("--backend %q: want gloo, nccl or auto", backend)
	}
	if !csrc.DistHas(backend) {
		_, msg := csrc.DistInit(backend, env.Addr, env.Port, env.Rank, env.World, false, "", 1)
		return nil, fmt.Errorf("--backend %s: %s", backend, msg)
	}
	server := env.Rank == 0 && !env.AgentStore
	pg, msg := csrc.DistInit(backend, env.Addr, env.Port, env.Rank, env.World, server, env.Prefix, timeout.Milliseconds())
	if msg != "" {
		return nil, fmt.Errorf("rank %d of %d: joining the job at %s:%d (%s): %s", env.Rank, env.World, env.Addr, env.Port, backend, oneLine(msg))
	}
	g.pg = pg
	return g, nil
}

// Close leaves the group.
func (g *Group) Close() {
	if g.pg != nil {
		csrc.DistDestroy(g.pg)
		g.pg = nil
	}
}

// Distributed reports whether there are other ranks.
func (g *Group) Distributed() bool { return g.World > 1 }

func handles(t []*ts.Tensor) []unsafe.Pointer {
	out := make([]unsafe.Pointer, len(t))
	for i, x := range t {
		out[i] = x.Ctensor()
	}
	return out
}

func (g *Group) fail(what, msg string) error {
	if msg == "" {
		return nil
	}
	return fmt.Errorf("rank %d of %d: %s: %w: %s", g.Rank, g.World, what, ErrCollective, oneLine(msg))
}

// ErrCollective marks a failed collective: a peer died, hung past the
// timeout, or the connection broke.
var ErrCollective = errors.New("collective failed")

// backwardMarker starts the message of a collective that failed inside
// autograd's backward pass (SyncBatchNorm's; internal/csrc/dist.cpp throws it).
const backwardMarker = "lwr_dist collective failed: "

// IsCollective reports whether err is a failed collective: one of Group's
// errors (ErrCollective), or libtorch's error from the backward pass of
// SyncBatchNorm, whose message the shim marks.
func IsCollective(err error) bool {
	return err != nil && (errors.Is(err, ErrCollective) || strings.Contains(err.Error(), backwardMarker))
}

// AllReduceMean replaces each tensor with its mean over the ranks, in
// buckets of BucketBytes (divided by the world size, then summed, as DDP
// does; Gloo has no average).
func (g *Group) AllReduceMean(t []*ts.Tensor) error {
	if g.pg == nil {
		return nil
	}
	defer runtime.KeepAlive(t)
	return g.fail("allreduce", csrc.DistAllreduce(g.pg, handles(t), true, BucketBytes))
}

// AllReduceSum replaces each tensor with its sum over the ranks.
func (g *Group) AllReduceSum(t []*ts.Tensor) error {
	if g.pg == nil {
		return nil
	}
	defer runtime.KeepAlive(t)
	return g.fail("allreduce", csrc.DistAllreduce(g.pg, handles(t), false, BucketBytes))
}

// Broadcast copies each tensor of rank root into the same tensor of every
// other rank.
func (g *Group) Broadcast(t []*ts.Tensor, root int) error {
	if g.pg == nil {
		return nil
	}
	defer runtime.KeepAlive(t)
	return g.fail("broadcast", csrc.DistBroadcast(g.pg, handles(t), root, BucketBytes))
}

// SyncBatchNorm is batch norm in training of x [N,C,H,W] (weight w and
// bias b [C]) over the global batch of all ranks, as PyTorch's
// SyncBatchNorm: every rank normalises with the mean and variance of the
// whole batch, updates the running statistics mean and variance [C] with
// them (momentum; the variance unbiased over the whole batch), and the
// backward pass sums the gradient statistics over the ranks. Every rank
// must call it, and run the backward pass, in the same order; a failure
// there reaches the caller as libtorch's error from the backward pass
// (IsCollective). On its own (world size 1) it is plain batch norm.
func (g *Group) SyncBatchNorm(x, w, b, mean, variance *ts.Tensor, momentum, eps float64) (*ts.Tensor, error) {
	if g.pg == nil {
		return ts.BatchNorm(x, w, b, mean, variance, true, momentum, eps, false)
	}
	defer runtime.KeepAlive([]*ts.Tensor{x, w, b, mean, variance})
	out, msg := csrc.DistSyncBatchNorm(g.pg, x.Ctensor(), w.Ctensor(), b.Ctensor(), mean.Ctensor(), variance.Ctensor(), momentum, eps)
	if err := g.fail("synchronised batch norm", msg); err != nil {
		return nil, err
	}
	return ts.New(lib.Ctensor(out)), nil
}

// Barrier returns when every rank has called it.
func (g *Group) Barrier() error {
	if g.pg == nil {
		return nil
	}
	return g.fail("barrier", csrc.DistBarrier(g.pg))
}

// oneLine is the first line of a c10d message (they carry C++ backtraces).
func oneLine(msg string) string {
	for i, c := range msg {
		if c == '\n' {
			return msg[:i]
		}
	}
	return msg
}
