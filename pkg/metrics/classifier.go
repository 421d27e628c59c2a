package metrics

import (
	"encoding/json"
	"math"
)

// ClassifierStats describes classifier weights W [C,d]: the per-class row norms
// (which grow with class frequency under plain CE) and the pairwise cosine
// similarities of the rows (which LWR pushes down). Pairs are i ≠ j.
type ClassifierStats struct {
	Norms          []float64   `json:"norms"` // ‖w_c‖₂ per class
	NormMin        float64     `json:"norm_min"`
	NormMax        float64     `json:"norm_max"`
	NormMean       float64     `json:"norm_mean"`
	CosMax         float64     `json:"cos_max"`          // largest cos(w_i, w_j)
	CosMean        float64     `json:"cos_mean"`         // mean cos(w_i, w_j)
	FracAboveTheta float64     `json:"frac_above_theta"` // fraction of pairs with cos(w_i, w_j) > θ
	Cos            [][]float64 `json:"-"`                // the C×C cosine matrix, for plots
}

// MarshalJSON writes s with NaN and infinite values as null (JSON has no
// NaN: weights that diverged must not make a log line unwritable).
func (s ClassifierStats) MarshalJSON() ([]byte, error) {
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	norms := make([]*float64, len(s.Norms))
	for i, v := range s.Norms {
		norms[i] = num(v)
	}
	return json.Marshal(struct {
		Norms          []*float64 `json:"norms"`
		NormMin        *float64   `json:"norm_min"`
		NormMax        *float64   `json:"norm_max"`
		NormMean       *float64   `json:"norm_mean"`
		CosMax         *float64   `json:"cos_max"`
		CosMean        *float64   `json:"cos_mean"`
		FracAboveTheta *float64   `json:"frac_above_theta"`
	}{norms, num(s.NormMin), num(s.NormMax), num(s.NormMean), num(s.CosMax), num(s.CosMean), num(s.FracAboveTheta)})
}
