// Package lwr implements Logit Weight Repulsion, a regularizer that pushes
// apart the classifier's weight rows (one per class) so that head classes
// do not crowd tail classes out of the feature space.
//
// For classifier weights W [C,d] with rows w_i:
//
//	z_i  = normalize(MLP(w_i))          MLP: Linear d→d, ReLU, Linear d→d (optional)
//	s_ij = z_i·z_j
//	m_ij = 1[s_ij > θ]                  constant: no gradient through the mask
//	R_i  = -log softmax_j(m_ij·s_ij/τ)[i]
//	R    = Σ_i R_i                      (the paper's Eq. 5; Mean divides by C)
//
// and the training objective is L_bal + λ(t)·R with λ(t) = (1 - t/T)² at
// epoch t of T. A masked pair contributes exp(0) = 1 to the softmax
// denominator: it is not removed.
package lwr

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Reduction says how the per-class terms R_i are combined: Sum (the
// paper's Eq. 5) or Mean (÷ C).
type Reduction = config.Reduction

const (
	Sum  = config.Sum
	Mean = config.Mean
)

// Config holds the regularizer's settings (config.LWR, so that presets
// and tables build without cgo); DefaultConfig has the paper's.
type Config = config.LWR

// DefaultConfig is the paper's setting: θ = 0.4, τ = 0.1, with projection,
// summed over classes.
func DefaultConfig() Config { return config.DefaultLWR() }

// Regularizer computes R for classifier weights of dimension d. With
// projection its MLP parameters live in the variable store it was built on
// (so the optimiser trains them and checkpoints hold them).
type Regularizer struct {
	cfg Config
	// W1 [d,d], B1 [d], W2 [d,d], B2 [d]: the MLP, PyTorch nn.Linear layout
	// (y = x·W1ᵀ + b1); nil without projection.
	W1, B1, W2, B2 *ts.Tensor
}

// New builds the regularizer for rows of dimension dim. The MLP's
// parameters are added under path as proj.0.weight, proj.0.bias,
// proj.2.weight and proj.2.bias (an nn.Sequential's names), initialised as
// nn.Linear does: U(-1/√d, 1/√d), in gotch.DefaultDType (float32 unless changed).
func New(path *nn.Path, dim int64, cfg Config) (*Regularizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Regularizer{cfg: cfg}
	if !cfg.Projection {
		return r, nil
	}
	if dim < 1 {
		return nil, fmt.Errorf("lwr: weight dimension %d: want ≥ 1", dim)
	}
	bound := 1 / math.Sqrt(float64(dim))
	p := path.Sub("proj")
	uniform := func(layer, name string, shape ...int64) *ts.Tensor {
		x := ts.MustZeros(shape, gotch.DefaultDType, p.Device())
		x.MustUniform_(-bound, bound)
		v := p.Sub(layer).MustAdd(name, x, true)
		x.MustDrop()
		return v
	}
	r.W1, r.B1 = uniform("0", "weight", dim, dim), uniform("0", "bias", dim)
	r.W2, r.B2 = uniform("2", "weight", dim, dim), uniform("2", "bias", dim)
	return r, nil
}

// Config is the regularizer's configuration.
func (r *Regularizer) Config() Config { return r.cfg }

// Loss returns R, a scalar, for classifier weights w [C,d] (float32 or
// float64, the dtype of the MLP when projecting). The gradient flows to w
// and to the MLP. The caller frees the result.
func (r *Regularizer) Loss(w *ts.Tensor) *ts.Tensor {
	var s libtorch.Scope
	defer s.Free()
	sim := r.similarity(&s, w)
	var mask *ts.Tensor
	libtorch.NoGrad(func() {
		mask = s.Keep(sim.MustGt(ts.FloatScalar(r.cfg.Theta), false).MustTotype(sim.DType(), true))
	})
	logits := s.Keep(sim.MustMul(mask, false).MustMulScalar(ts.FloatScalar(1/r.cfg.Tau), true))
	c := w.MustSize()[0]
	targets := s.Keep(ts.MustArange(ts.IntScalar(c), gotch.Int64, w.MustDevice()))
	red := int64(2) // sum
	if r.cfg.Reduction == Mean {
		red = 1
	}
	return logits.MustCrossEntropyLoss(targets, libtorch.None, red, -100, 0, false)
}

// similarity returns s [C,C], the cosine similarities of the (projected)
// rows of w, kept in scope s.
func (r *Regularizer) similarity(s *libtorch.Scope, w *ts.Tensor) *ts.Tensor {
	v := w
	if r.cfg.Projection {
		h := s.Keep(libtorch.MatMulT(w, r.W1, r.B1).MustRelu(true))
		v = s.Keep(libtorch.MatMulT(h, r.W2, r.B2))
	}
	z := s.Keep(normalizeRows(s, v))
	return s.Keep(libtorch.MatMulT(z, z, nil))
}

// normalizeRows returns v / max(‖v_i‖₂, 1e-12) row by row, as
// torch.nn.functional.normalize.
func normalizeRows(s *libtorch.Scope, v *ts.Tensor) *ts.Tensor {
	norm := s.Keep(v.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false).MustClampMin(ts.FloatScalar(1e-12), true))
	return v.MustDiv(norm, false)
}

// Schedule is the weight λ(t) of R over training (config.Schedule):
// Quadratic, the paper's (1 - t/T)², or Constant.
type Schedule = config.Schedule

const (
	Quadratic = config.Quadratic
	Constant  = config.Constant
)
