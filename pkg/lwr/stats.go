package lwr

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/metrics"
)

// Stats describes classifier weights W [C,d] (metrics.ClassifierStats:
// row norms and pairwise row cosines), as WeightStats computes them.
type Stats = metrics.ClassifierStats

// WeightStats computes Stats of w [C,d] (C ≥ 2) without recording
// gradients. It costs one C×C product and copies C² numbers to the host
// (a device sync): cheap enough for every epoch.
func WeightStats(w *ts.Tensor, theta float64) Stats {
	var st Stats
	libtorch.NoGrad(func() {
		var s libtorch.Scope
		defer s.Free()
		wd := s.Keep(w.MustDetach(false).MustTotype(gotch.Double, true))
		norms := s.Keep(wd.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, false, false))
		z := s.Keep(normalizeRows(&s, wd))
		cos := s.Keep(libtorch.MatMulT(z, z, nil).MustTo(gotch.CPU, true))
		st.Norms = norms.MustTo(gotch.CPU, false).Float64Values(true) // host sync
		c := len(st.Norms)
		vals := cos.Float64Values()
		st.Cos = make([][]float64, c)
		for i := range st.Cos {
			st.Cos[i] = vals[i*c : (i+1)*c]
		}
		st.NormMin, st.NormMax = math.Inf(1), math.Inf(-1)
		for _, n := range st.Norms {
			st.NormMin = math.Min(st.NormMin, n)
			st.NormMax = math.Max(st.NormMax, n)
			st.NormMean += n / float64(c)
		}
		st.CosMax = math.Inf(-1)
		var above, pairs int
		for i := 0; i < c; i++ {
			for j := 0; j < c; j++ {
				if i == j {
					continue
				}
				v := vals[i*c+j]
				st.CosMax = math.Max(st.CosMax, v)
				st.CosMean += v
				pairs++
				if v > theta {
					above++
				}
			}
		}
		if pairs > 0 {
			st.CosMean /= float64(pairs)
			st.FracAboveTheta = float64(above) / float64(pairs)
		}
	})
	return st
}
