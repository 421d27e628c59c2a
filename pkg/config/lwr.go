package config

import (
	"fmt"
	"math"
)

// Reduction says how the per-class terms R_i are combined.
type Reduction string

const (
	Sum  Reduction = "sum"  // Σ_i R_i, the paper's Eq. 5
	Mean Reduction = "mean" // Σ_i R_i / C (= cross-entropy over the C rows)
)

// LWR holds the regularizer's settings (pkg/lwr); DefaultLWR has the paper's.
type LWR struct {
	Theta      float64   // mask threshold θ on the cosine similarity, in [-1, 1] (0.4)
	Tau        float64   // softmax temperature τ > 0 (0.1)
	Projection bool      // pass the rows through the trainable MLP first (true, Section 3.3.2)
	Reduction  Reduction // Sum (the paper) or Mean
}

// DefaultLWR is the paper's setting: θ = 0.4, τ = 0.1, with projection,
// summed over classes.
func DefaultLWR() LWR {
	return LWR{Theta: 0.4, Tau: 0.1, Projection: true, Reduction: Sum}
}

// Validate returns an error naming the first setting out of range.
func (c LWR) Validate() error {
	switch {
	case math.IsNaN(c.Theta) || c.Theta < -1 || c.Theta > 1:
		return fmt.Errorf("lwr theta = %v is out of range: want -1 ≤ θ ≤ 1", c.Theta)
	case !(c.Tau > 0) || math.IsInf(c.Tau, 0):
		return fmt.Errorf("lwr tau = %v is out of range: want τ > 0", c.Tau)
	case c.Reduction != Sum && c.Reduction != Mean:
		return fmt.Errorf("lwr reduction %q: want sum or mean", c.Reduction)
	}
	return nil
}

// Schedule is the weight λ(t) of R over training.
type Schedule string

const (
	Quadratic Schedule = "quadratic" // λ(t) = (1 - t/T)², the paper's
	Constant  Schedule = "constant"  // λ(t) = 1, the ablation
)

// Weight is λ at epoch t (counting from 0) of a run of T epochs.
func (s Schedule) Weight(t, T int) (float64, error) {
	switch s {
	case Quadratic:
		if T <= 0 {
			return 0, fmt.Errorf("lwr schedule: %d epochs: want ≥ 1", T)
		}
		f := 1 - float64(t)/float64(T)
		return f * f, nil
	case Constant:
		return 1, nil
	}
	return 0, fmt.Errorf("lwr schedule %q: want quadratic or constant", s)
}
