// Package golden holds what the tests against the reference vectors
// (pkg/losses/testdata/losses.json) share: the file's place and its
// tolerance rule.
package golden

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
)

// File is the path of the reference vectors.
func File() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "pkg", "losses", "testdata", "losses.json")
}

// Within applies the vectors' rule to every entry,
//
//	|got − want| ≤ rtol·|want| + rtol·max_k |want_k|,
//
// with rtol 1e-5 for float64 and 1e-4 for float32; the floor scaled by the
// largest entry covers the many entries that are numerically zero.
func Within(got, want []float64, rtol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d values, want %d", len(got), len(want))
	}
	var top float64
	for _, w := range want {
		top = math.Max(top, math.Abs(w))
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); !(d <= rtol*math.Abs(want[i])+rtol*top) {
			return fmt.Errorf("entry %d: got %.10g, want %.10g (diff %.3g)", i, got[i], want[i], d)
		}
	}
	return nil
}
