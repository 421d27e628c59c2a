// Package losses implements the balanced classification losses of the
// long-tailed literature over logits [B,C] and int64 targets [B], built from
// the per-class training counts: CE, Balanced Softmax, Logit Adjustment,
// LDAM (and LDAM-DRW), Focal, Class-Balanced re-weighting by effective
// number, CE-DRW and Influence-Balanced loss. Each matches its reference
// implementation (see testdata/README.md); New builds one by name.
//
// A Loss is stateless but for the epoch (DRW and IB switch on at an epoch)
// and caches its per-class constants per dtype and device.
package losses

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Loss is a classification loss.
type Loss interface {
	// Loss returns the scalar loss of logits [B,C] (float32 or float64)
	// against targets [B] (int64 class indices), with gradient to logits.
	// The caller frees the result.
	Loss(logits, targets *ts.Tensor) *ts.Tensor
	// Name is the loss's name as New takes it.
	Name() string
}

// EpochSetter is a Loss whose form changes with the epoch (DRW and IB).
// The trainer calls SetEpoch at the start of each epoch, counting from 0.
type EpochSetter interface {
	SetEpoch(epoch int)
}

// FeatureLoss is a Loss that also reads the penultimate features (IB).
type FeatureLoss interface {
	Loss
	// LossWithFeatures is Loss with features [B,D], the input of the
	// classifier; gradient flows to logits and features.
	LossWithFeatures(logits, targets, features *ts.Tensor) *ts.Tensor
}

// Config holds every loss's hyper-parameters (config.Loss, so that
// presets and tables build without cgo); each loss reads its own.
type Config = config.Loss

// DefaultConfig is the reference recipes' settings for a run of the given
// number of epochs: DRW from 80% of the run (160 of 200), IB from half.
func DefaultConfig(name string, epochs int) Config { return config.DefaultLoss(name, epochs) }

type builder func(c Config, counts []int64) Loss

var builders = map[string]builder{
	"ce":               func(c Config, n []int64) Loss { return &crossEntropy{name: "ce", base: newBase(n)} },
	"balanced-softmax": func(c Config, n []int64) Loss { return newLogitAdjusted("balanced-softmax", n, 1, false) },
	"logit-adjustment": func(c Config, n []int64) Loss { return newLogitAdjusted("logit-adjustment", n, c.Tau, true) },
	"cb-ce":            func(c Config, n []int64) Loss { return newWeighted("cb-ce", n, ClassBalancedWeights(n, c.Beta), 0) },
	"ce-drw": func(c Config, n []int64) Loss {
		return newWeighted("ce-drw", n, ClassBalancedWeights(n, 0.9999), c.DRWEpoch)
	},
	"ldam": func(c Config, n []int64) Loss { return newLDAM("ldam", n, c, nil, 0) },
	"ldam-drw": func(c Config, n []int64) Loss {
		return newLDAM("ldam-drw", n, c, ClassBalancedWeights(n, 0.9999), c.DRWEpoch)
	},
	"focal": func(c Config, n []int64) Loss { return newFocal("focal", n, c.Gamma, nil, 0) },
	"focal-drw": func(c Config, n []int64) Loss {
		return newFocal("focal-drw", n, c.Gamma, ClassBalancedWeights(n, 0.9999), c.DRWEpoch)
	},
	"ib":       func(c Config, n []int64) Loss { return newIB("ib", n, c, false) },
	"ib-focal": func(c Config, n []int64) Loss { return newIB("ib-focal", n, c, true) },
}

// aliases are short names a user may type.
var aliases = map[string]string{"bs": "balanced-softmax", "la": "logit-adjustment", "cb": "cb-ce"}

// Names lists the losses New builds, sorted.
func Names() []string {
	var names []string
	for n := range builders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New builds the loss c.Name for a training set with counts[c] images of
// class c. It checks the hyper-parameters that loss reads and returns an
// error naming the parameter, its value and its valid range.
func New(c Config, counts []int64) (Loss, error) {
	name := strings.ToLower(c.Name)
	if a, ok := aliases[name]; ok {
		name = a
	}
	b, ok := builders[name]
	if !ok {
		return nil, fmt.Errorf("unknown loss %q: want one of %s (or bs, la, cb)", c.Name, strings.Join(Names(), ", "))
	}
	if len(counts) < 2 {
		return nil, fmt.Errorf("loss %s: want counts of at least 2 classes, got %d", name, len(counts))
	}
	for i, n := range counts {
		if n <= 0 {
			return nil, fmt.Errorf("loss %s: class %d has %d training images; every class needs at least one", name, i, n)
		}
	}
	if err := check(c, name); err != nil {
		return nil, fmt.Errorf("loss %s: %w", name, err)
	}
	return b(c, counts), nil
}

// check validates the hyper-parameters the named loss reads.
func check(c Config, name string) error {
	type rule struct {
		field string
		ok    bool
		want  string
		value any
	}
	var rules []rule
	switch name {
	case "logit-adjustment":
		rules = append(rules, rule{"tau", c.Tau >= 0 && !math.IsInf(c.Tau, 0), "τ ≥ 0", c.Tau})
	case "cb-ce":
		rules = append(rules, rule{"beta", c.Beta >= 0 && c.Beta < 1, "0 ≤ β < 1", c.Beta})
	case "ldam", "ldam-drw":
		rules = append(rules,
			rule{"max-margin", c.MaxMargin > 0 && c.MaxMargin < 10, "0 < max margin < 10", c.MaxMargin},
			rule{"scale", c.Scale > 0 && c.Scale <= 1000, "0 < s ≤ 1000", c.Scale})
	case "focal", "focal-drw", "ib-focal":
		rules = append(rules, rule{"gamma", c.Gamma >= 0 && c.Gamma <= 10, "0 ≤ γ ≤ 10", c.Gamma})
	}
	switch name {
	case "ce-drw", "ldam-drw", "focal-drw":
		rules = append(rules, rule{"drw-epoch", c.DRWEpoch >= 0, "epoch ≥ 0", c.DRWEpoch})
	case "ib", "ib-focal":
		rules = append(rules,
			rule{"ib-alpha", c.IBAlpha > 0, "α > 0", c.IBAlpha},
			rule{"ib-epsilon", c.IBEpsilon > 0, "ε > 0", c.IBEpsilon},
			rule{"ib-epoch", c.IBEpoch >= 0, "epoch ≥ 0", c.IBEpoch})
	}
	for _, r := range rules {
		if !r.ok {
			return fmt.Errorf("%s = %v is out of range: want %s", r.field, r.value, r.want)
		}
	}
	return nil
}

// ClassBalancedWeights are the weights of Cui et al.'s effective number,
//
//	w_c = (1-β) / (1-β^n_c),  scaled so that Σ_c w_c = C.
//
// DRW uses them with β = 0.9999.
func ClassBalancedWeights(counts []int64, beta float64) []float64 {
	w := make([]float64, len(counts))
	var sum float64
	for c, n := range counts {
		w[c] = (1 - beta) / (1 - math.Pow(beta, float64(n)))
		sum += w[c]
	}
	for c := range w {
		w[c] *= float64(len(counts)) / sum
	}
	return w
}

// InverseFrequencyWeights are IB-Loss's re-weighting,
//
//	w_c = (1/n_c) · C / Σ_k (1/n_k).
func InverseFrequencyWeights(counts []int64) []float64 {
	w := make([]float64, len(counts))
	var sum float64
	for c, n := range counts {
		w[c] = 1 / float64(n)
		sum += w[c]
	}
	for c := range w {
		w[c] *= float64(len(counts)) / sum
	}
	return w
}

// LDAMMargins are LDAM's per-class margins,
//
//	m_c = maxMargin · n_c^(-1/4) / max_k n_k^(-1/4).
func LDAMMargins(counts []int64, maxMargin float64) []float64 {
	m := make([]float64, len(counts))
	var top float64
	for c, n := range counts {
		m[c] = math.Pow(float64(n), -0.25)
		top = math.Max(top, m[c])
	}
	for c := range m {
		m[c] *= maxMargin / top
	}
	return m
}

// base holds the class counts and the per-class constant tensors of a
// loss, made once per dtype and device.
type base struct {
	counts []int64
	cache  map[string]*ts.Tensor
	epoch  int
}

func newBase(counts []int64) base {
	return base{counts: append([]int64(nil), counts...), cache: map[string]*ts.Tensor{}}
}

// SetEpoch records the epoch for losses that switch at one.
func (b *base) SetEpoch(epoch int) { b.epoch = epoch }

// constant returns vals as a [C] tensor of dtype and device, made once.
func (b *base) constant(key string, vals []float64, dtype gotch.DType, dev gotch.Device) *ts.Tensor {
	k := fmt.Sprintf("%s/%v/%s%d", key, dtype, dev.Name, dev.Value)
	if t, ok := b.cache[k]; ok {
		return t
	}
	t := ts.MustOfSlice(vals).MustTotype(dtype, true).MustTo(dev, true)
	b.cache[k] = t
	return t
}

const (
	reductionNone = 0
	reductionMean = 1
)

// crossEntropy is plain softmax cross-entropy, mean over the batch.
type crossEntropy struct {
	name string
	base
}

func (l *crossEntropy) Name() string { return l.name }

func (l *crossEntropy) Loss(logits, targets *ts.Tensor) *ts.Tensor {
	return logits.MustCrossEntropyLoss(targets, libtorch.None, reductionMean, -100, 0, false)
}

// logitAdjusted is CE(x + τ·log p) with p the class prior (Logit
// Adjustment) or, for Balanced Softmax, CE(x + log n).
type logitAdjusted struct {
	name   string
	shift  []float64
	shifts base
}

func newLogitAdjusted(name string, counts []int64, tau float64, prior bool) *logitAdjusted {
	var total float64
	for _, n := range counts {
		total += float64(n)
	}
	shift := make([]float64, len(counts))
	for c, n := range counts {
		if prior {
			shift[c] = tau * math.Log(float64(n)/total)
		} else {
			shift[c] = math.Log(float64(n))
		}
	}
	return &logitAdjusted{name: name, shift: shift, shifts: newBase(counts)}
}

func (l *logitAdjusted) Name() string { return l.name }

func (l *logitAdjusted) Loss(logits, targets *ts.Tensor) *ts.Tensor {
	shift := l.shifts.constant("shift", l.shift, logits.DType(), logits.MustDevice())
	adjusted := logits.MustAdd(shift, false)
	defer adjusted.MustDrop()
	return adjusted.MustCrossEntropyLoss(targets, libtorch.None, reductionMean, -100, 0, false)
}

// weighted is class-weighted CE, Σ w[y]·CE / Σ w[y]; with a switch epoch
// (DRW) it is plain CE before it.
type weighted struct {
	name    string
	weights []float64
	from    int
	base
}

func newWeighted(name string, counts []int64, w []float64, from int) *weighted {
	return &weighted{name: name, weights: w, from: from, base: newBase(counts)}
}

func (l *weighted) Name() string { return l.name }

func (l *weighted) Loss(logits, targets *ts.Tensor) *ts.Tensor {
	w := libtorch.None
	if l.epoch >= l.from {
		w = l.constant("w", l.weights, logits.DType(), logits.MustDevice())
	}
	return logits.MustCrossEntropyLoss(targets, w, reductionMean, -100, 0, false)
}

// ldam is LDAM: CE(s·(x - m[y]·onehot(y))), mean, or with DRW weights the
// weighted mean from the switch epoch on.
type ldam struct {
	name    string
	margins []float64
	scale   float64
	weights []float64 // nil: never re-weighted
	from    int
	base
}

func newLDAM(name string, counts []int64, c Config, w []float64, from int) *ldam {
	return &ldam{name: name, margins: LDAMMargins(counts, c.MaxMargin), scale: c.Scale, weights: w, from: from, base: newBase(counts)}
}

func (l *ldam) Name() string { return l.name }

func (l *ldam) Loss(logits, targets *ts.Tensor) *ts.Tensor {
	var s libtorch.Scope
	defer s.Free()
	dtype, dev := logits.DType(), logits.MustDevice()
	m := l.constant("m", l.margins, dtype, dev)
	batchM := s.Keep(m.MustIndexSelect(0, targets, false).MustUnsqueeze(1, true))             // [B,1]
	onehot := s.Keep(targets.MustOneHot(int64(len(l.counts)), false).MustTotype(dtype, true)) // [B,C]
	margin := s.Keep(onehot.MustMul(batchM, false))
	z := s.Keep(logits.MustSub(margin, false).MustMulScalar(ts.FloatScalar(l.scale), true))
	w := libtorch.None
	if l.weights != nil && l.epoch >= l.from {
		w = l.constant("w", l.weights, dtype, dev)
	}
	return z.MustCrossEntropyLoss(targets, w, reductionMean, -100, 0, false)
}

// focalTerm returns mean_i (1 - exp(-l_i))^γ · l_i (times ib_i when ib is
// not nil) for per-sample losses l [B]. Nothing is detached, as in the
// references.
func focalTerm(s *libtorch.Scope, l, ib *ts.Tensor, gamma float64) *ts.Tensor {
	term := l
	if gamma != 0 {
		p := s.Keep(l.MustNeg(false).MustExp(true))
		mod := s.Keep(p.MustRsubScalar(ts.FloatScalar(1), false).MustPowTensorScalar(ts.FloatScalar(gamma), true))
		term = s.Keep(mod.MustMul(l, false))
	}
	if ib != nil {
		term = s.Keep(term.MustMul(ib, false))
	}
	return term.MustMean(term.DType(), false)
}

// focal is Lin et al.'s focal loss on l_i = w[y_i]·CE_i (w = 1, or DRW
// weights from the switch epoch on), as LDAM-DRW implements it: plain mean.
type focal struct {
	name    string
	gamma   float64
	weights []float64
	from    int
	base
}

func newFocal(name string, counts []int64, gamma float64, w []float64, from int) *focal {
	return &focal{name: name, gamma: gamma, weights: w, from: from, base: newBase(counts)}
}

func (l *focal) Name() string { return l.name }

func (l *focal) Loss(logits, targets *ts.Tensor) *ts.Tensor {
	var s libtorch.Scope
	defer s.Free()
	w := libtorch.None
	if l.weights != nil && l.epoch >= l.from {
		w = l.constant("w", l.weights, logits.DType(), logits.MustDevice())
	}
	per := s.Keep(logits.MustCrossEntropyLoss(targets, w, reductionNone, -100, 0, false))
	return focalTerm(&s, per, nil, l.gamma)
}

// ib is Park et al.'s influence-balanced loss: plain CE before the switch
// epoch, then mean_i ib_i · w[y_i]·CE_i with
//
//	ib_i = α / (Σ_j |softmax(x_i)_j - onehot(y_i)_j| · ‖f_i‖₁ + ε)
//
// and w the inverse-frequency weights; ib-focal adds the focal factor.
type ib struct {
	name    string
	alpha   float64
	eps     float64
	gamma   float64 // used by ib-focal only
	isFocal bool
	weights []float64
	from    int
	base
}

func newIB(name string, counts []int64, c Config, isFocal bool) *ib {
	return &ib{name: name, alpha: c.IBAlpha, eps: c.IBEpsilon, gamma: c.Gamma, isFocal: isFocal,
		weights: InverseFrequencyWeights(counts), from: c.IBEpoch, base: newBase(counts)}
}

func (l *ib) Name() string { return l.name }

// Loss is plain CE before the switch epoch; after it IB needs the
// features, and Loss panics: call LossWithFeatures.
func (l *ib) Loss(logits, targets *ts.Tensor) *ts.Tensor {
	if l.epoch >= l.from {
		panic(fmt.Sprintf("loss %s needs the penultimate features from epoch %d on: call LossWithFeatures", l.name, l.from))
	}
	return logits.MustCrossEntropyLoss(targets, libtorch.None, reductionMean, -100, 0, false)
}

func (l *ib) LossWithFeatures(logits, targets, features *ts.Tensor) *ts.Tensor {
	if l.epoch < l.from {
		return logits.MustCrossEntropyLoss(targets, libtorch.None, reductionMean, -100, 0, false)
	}
	h := features.MustAbs(false).MustSumDimIntlist([]int64{1}, false, features.DType(), true)
	defer h.MustDrop()
	return l.lossWithL1(logits, targets, h)
}

// lossWithL1 is the IB term given h [B], the L1 norms of the features.
func (l *ib) lossWithL1(logits, targets, h *ts.Tensor) *ts.Tensor {
	var s libtorch.Scope
	defer s.Free()
	dtype := logits.DType()
	prob := s.Keep(logits.MustSoftmax(1, dtype, false))
	onehot := s.Keep(targets.MustOneHot(int64(len(l.counts)), false).MustTotype(dtype, true))
	g := s.Keep(prob.MustSub(onehot, false).MustAbs(true).MustSumDimIntlist([]int64{1}, false, dtype, true))
	gh := s.Keep(g.MustMul(h, false).MustAddScalar(ts.FloatScalar(l.eps), true))
	ibw := s.Keep(gh.MustReciprocal(false).MustMulScalar(ts.FloatScalar(l.alpha), true))
	w := l.constant("w", l.weights, dtype, logits.MustDevice())
	per := s.Keep(logits.MustCrossEntropyLoss(targets, w, reductionNone, -100, 0, false))
	gamma := 0.0
	if l.isFocal {
		gamma = l.gamma
	}
	return focalTerm(&s, per, ibw, gamma)
}
