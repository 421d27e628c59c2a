// Package fusedtest is what the tests of the fused convolutions share:
// whether they run on this build, and networks whose batch norms are worth
// folding.
package fusedtest

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Require skips t on a build without the fused convolutions (PyPI's torch,
// or Debian's without libdnnl-dev), unless LWR_REQUIRE_FUSED=1 — set by CI
// for Debian's libtorch with libdnnl-dev — makes that a failure.
func Require(t testing.TB) {
	t.Helper()
	if libtorch.FusedAvailable() {
		return
	}
	if os.Getenv("LWR_REQUIRE_FUSED") == "1" {
		t.Fatal("LWR_REQUIRE_FUSED=1 but this build has no fused convolutions (make setup's log says why)")
	}
	t.Skip("no fused convolutions in this build")
}

// PerturbBatchNorms gives every batch norm of vs (float32, on the CPU) —
// each PREFIX with a PREFIXrunning_mean — a weight in [0.5, 1.5), a bias
// and running mean N(0, 0.2²) and a running variance in [0.25, 1.75), away
// from their initial 1, 0, 0, 1 as after training, so that folding them is
// exercised. The draws follow libtorch's seed 7, in name order.
func PerturbBatchNorms(vs *nn.VarStore) {
	vars := vs.Variables()
	var prefixes []string
	for name := range vars {
		if p, ok := strings.CutSuffix(name, "running_mean"); ok {
			prefixes = append(prefixes, p)
		}
	}
	slices.Sort(prefixes)
	libtorch.ManualSeed(7)
	libtorch.NoGrad(func() {
		for _, p := range prefixes {
			for _, part := range []struct {
				name        string
				normal      bool
				scale, bias float64
			}{{"weight", false, 1, 0.5}, {"bias", true, 0.2, 0}, {"running_mean", true, 0.2, 0}, {"running_var", false, 1.5, 0.25}} {
				v := vars[p+part.name]
				draw := ts.MustRand
				if part.normal {
					draw = ts.MustRandn
				}
				r := draw(v.MustSize(), gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(part.scale), true).MustAddScalar(ts.FloatScalar(part.bias), true)
				v.Copy_(r)
				r.MustDrop()
			}
		}
	})
}
