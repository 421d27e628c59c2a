package losses

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestNewRejects(t *testing.T) {
	counts := []int64{500, 50, 5}
	bad := func(name string, edit func(*Config)) Config {
		c := DefaultConfig(name, 200)
		edit(&c)
		return c
	}
	cases := []struct {
		name   string
		cfg    Config
		counts []int64
		want   string
	}{
		{"unknown", DefaultConfig("softmax", 200), counts, `unknown loss "softmax": want one of balanced-softmax, cb-ce, ce, ce-drw, focal`},
		{"negative tau", bad("la", func(c *Config) { c.Tau = -1 }), counts, "tau = -1 is out of range: want τ ≥ 0"},
		{"beta 1", bad("cb", func(c *Config) { c.Beta = 1 }), counts, "beta = 1 is out of range"},
		{"zero scale", bad("ldam", func(c *Config) { c.Scale = 0 }), counts, "scale = 0 is out of range"},
		{"negative gamma", bad("focal", func(c *Config) { c.Gamma = -2 }), counts, "gamma = -2 is out of range"},
		{"zero alpha", bad("ib", func(c *Config) { c.IBAlpha = 0 }), counts, "ib-alpha = 0 is out of range"},
		{"empty class", DefaultConfig("bs", 200), []int64{10, 0}, "class 1 has 0 training images"},
		{"one class", DefaultConfig("ce", 200), []int64{10}, "at least 2 classes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg, c.counts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	for _, alias := range []string{"bs", "LA", "cb"} {
		if _, err := New(DefaultConfig(alias, 200), counts); err != nil {
			t.Errorf("alias %s: %v", alias, err)
		}
	}
}

func scalar(t *testing.T, l Loss, logits [][]float64, targets []int64) float64 {
	t.Helper()
	vals, shape := flatten(logits)
	x := ts.MustOfSlice(vals).MustView(shape, true)
	defer x.MustDrop()
	y := ts.MustOfSlice(targets)
	defer y.MustDrop()
	var out *ts.Tensor
	if fl, ok := l.(FeatureLoss); ok {
		f := ts.MustOnes([]int64{shape[0], 4}, gotch.Double, gotch.CPU)
		defer f.MustDrop()
		out = fl.LossWithFeatures(x, y, f)
	} else {
		out = l.Loss(x, y)
	}
	defer out.MustDrop()
	return out.Float64Values()[0]
}

// TestSwitchEpochs: DRW and IB losses are plain CE before their epoch and
// differ from it after.
func TestSwitchEpochs(t *testing.T) {
	counts := []int64{1000, 100, 10}
	logits := [][]float64{{2, 0.5, -1}, {0.1, 0.3, 0.2}, {-1, 0, 3}}
	targets := []int64{0, 1, 2}
	ce, _ := New(DefaultConfig("ce", 10), counts)
	want := scalar(t, ce, logits, targets)
	for _, name := range []string{"ce-drw", "ib", "focal-drw"} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig(name, 10) // DRW from 8, IB from 5
			l, err := New(cfg, counts)
			if err != nil {
				t.Fatal(err)
			}
			e := l.(EpochSetter)
			e.SetEpoch(4)
			before := scalar(t, l, logits, targets)
			e.SetEpoch(9)
			after := scalar(t, l, logits, targets)
			if name != "focal-drw" && math.Abs(before-want) > 1e-12 {
				t.Errorf("before the switch: %v, want CE %v", before, want)
			}
			if math.Abs(after-before) < 1e-6 {
				t.Errorf("after the switch the loss is unchanged (%v)", after)
			}
		})
	}
}

// TestDegenerate: equal logits give log C for CE; one class alone in the
// batch and Balanced Softmax on balanced counts reduce to CE.
func TestDegenerate(t *testing.T) {
	flat := [][]float64{{0, 0, 0, 0}, {0, 0, 0, 0}}
	ce, _ := New(DefaultConfig("ce", 10), []int64{5, 5, 5, 5})
	if got := scalar(t, ce, flat, []int64{1, 3}); math.Abs(got-math.Log(4)) > 1e-12 {
		t.Errorf("CE of equal logits = %v, want log 4", got)
	}
	bs, _ := New(DefaultConfig("bs", 10), []int64{7, 7, 7, 7})
	logits := [][]float64{{1, -2, 0.5, 3}, {0, 1, 2, 3}}
	if got, want := scalar(t, bs, logits, []int64{2, 2}), scalar(t, ce, logits, []int64{2, 2}); math.Abs(got-want) > 1e-12 {
		t.Errorf("balanced softmax on balanced counts = %v, want CE %v", got, want)
	}
	cb, _ := New(DefaultConfig("cb", 10), []int64{100, 10, 1, 1})
	if got, want := scalar(t, cb, logits, []int64{0, 0}), scalar(t, ce, logits, []int64{0, 0}); math.Abs(got-want) > 1e-12 {
		t.Errorf("weighted mean over one class = %v, want CE %v", got, want)
	}
}

func TestWeights(t *testing.T) {
	counts := []int64{500, 50, 5}
	for name, w := range map[string][]float64{
		"cb":      ClassBalancedWeights(counts, 0.999),
		"inverse": InverseFrequencyWeights(counts),
	} {
		var sum float64
		for _, v := range w {
			sum += v
		}
		if math.Abs(sum-3) > 1e-12 || !(w[0] < w[1] && w[1] < w[2]) {
			t.Errorf("%s weights %v: want sum 3, rising to the rare class", name, w)
		}
	}
	m := LDAMMargins(counts, 0.5)
	if m[2] != 0.5 || math.Abs(m[0]-0.5*math.Pow(100, -0.25)) > 1e-15 {
		t.Errorf("LDAM margins %v: want 0.5 for the rarest, 0.5·100^-1/4 for the head", m)
	}
}
