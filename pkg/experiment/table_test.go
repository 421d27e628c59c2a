package experiment

import (
	"math"
	"testing"
)

func TestStatOf(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		in   []float64
		want string
		n    int
	}{
		{"three seeds", []float64{1, 2, 3}, "2.00 ± 1.00", 3},
		{"one seed has no spread", []float64{71.5}, "71.50", 1},
		{"undefined values left out", []float64{nan, 4, 6}, "5.00 ± 1.41", 2},
		{"nothing defined", []float64{nan}, "-", 0},
		{"no seeds", nil, "-", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := statOf(tc.in)
			if got := s.String(); got != tc.want || s.N != tc.n {
				t.Errorf("statOf(%v) = %q (n %d), want %q (n %d)", tc.in, got, s.N, tc.want, tc.n)
			}
		})
	}
}
