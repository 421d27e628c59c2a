package golden

import (
	"os"
	"testing"
)

func TestWithin(t *testing.T) {
	cases := []struct {
		got, want []float64
		ok        bool
	}{
		{[]float64{1, 2}, []float64{1, 2}, true},
		{[]float64{1.00001, 0}, []float64{1, 0}, true},       // 1e-5·1 + 1e-5·1 allowed
		{[]float64{1.0001, 0}, []float64{1, 0}, false},       // 1e-4 off
		{[]float64{1e-6, 0.5}, []float64{1e-20, 0.5}, true},  // tiny entries: floor from the largest
		{[]float64{1e-4, 0.5}, []float64{1e-20, 0.5}, false}, // but not beyond it
		{[]float64{1}, []float64{1, 2}, false},
	}
	for i, c := range cases {
		if err := Within(c.got, c.want, 1e-5); (err == nil) != c.ok {
			t.Errorf("case %d: err = %v, want ok = %v", i, err, c.ok)
		}
	}
}

func TestFileExists(t *testing.T) {
	if _, err := os.Stat(File()); err != nil {
		t.Fatal(err)
	}
}
