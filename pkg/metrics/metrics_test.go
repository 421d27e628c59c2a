package metrics

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	ev := NewEvaluation(3)
	// Four images: class 0 right (p .9), class 1 right (p .6), class 1 wrong, class 2 right (p .5).
	ev.Add([]float64{
		0.9, 0.05, 0.05,
		0.2, 0.6, 0.2,
		0.7, 0.2, 0.1,
		0.25, 0.25, 0.5,
	}, []int64{0, 1, 1, 2})
	m := ev.Metrics([]int64{500, 50, 5})
	check := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("top1", float64(m.Top1), 75)
	check("top5 of 3 classes", float64(m.Top5), 100)
	check("many", float64(m.Many), 100)
	check("medium", float64(m.Medium), 50)
	check("few", float64(m.Few), 100)
	check("nll", float64(m.NLL), -(math.Log(0.9)+math.Log(0.6)+math.Log(0.2)+math.Log(0.5))/4)
	// Bins: .9 → bin 13 (acc 1), .6 → 9 (1), .7 → 10 (0), .5 → 7 (1).
	check("ece", float64(m.ECE), 100*(0.1+0.4+0.7+0.5)/4)
	if len(m.Calibration) != 15 || m.Calibration[10] != (CalibrationBin{1, 0.7, 0}) || m.Calibration[13] != (CalibrationBin{1, 0.9, 1}) || m.Calibration[0].Count != 0 {
		t.Errorf("calibration bins %+v, want bin 10 {1 .7 0} and bin 13 {1 .9 1}", m.Calibration)
	}
	b, err := json.Marshal(NewEvaluation(2).Metrics([]int64{1, 1}))
	if err != nil || !strings.Contains(string(b), `"many":null`) {
		t.Errorf("empty groups encode as %s (err %v), want null", b, err)
	}
	// A diverged network's NaN outputs count as wrong, apart from NLL and ECE.
	ev = NewEvaluation(2)
	ev.Add([]float64{0.8, 0.2, math.NaN(), math.NaN()}, []int64{0, 1})
	m = ev.Metrics([]int64{500, 5})
	check("top1 with a NaN row", float64(m.Top1), 50)
	check("few with a NaN row", float64(m.Few), 0)
	check("nll with a NaN row", float64(m.NLL), -math.Log(0.8))
	if m.NonFinite != 1 {
		t.Errorf("non_finite = %d, want 1", m.NonFinite)
	}
	check("top5 with a NaN row", float64(m.Top5), 50)
	// Top-5 of 7 classes: the true class 5th (in), 6th (out), 1st (in).
	ev = NewEvaluation(7)
	ev.Add([]float64{
		0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05, // label 4: four above it
		0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05, // label 5: five above it
		0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05, // label 0
	}, []int64{4, 5, 0})
	check("top5 of 7 classes", float64(ev.Metrics(make([]int64, 7)).Top5), 200.0/3)
	// Every output NaN: NLL and ECE are undefined (null), not a perfect 0.
	ev = NewEvaluation(2)
	ev.Add([]float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}, []int64{0, 1})
	b, err = json.Marshal(ev.Metrics([]int64{500, 5}))
	if err != nil || !strings.Contains(string(b), `"nll":null`) || !strings.Contains(string(b), `"ece":null`) || !strings.Contains(string(b), `"top1":0`) {
		t.Errorf("all outputs NaN encode as %s (err %v), want nll and ece null, top1 0", b, err)
	}
}

// TestRecord: with Record, every image's prediction, top-5 and confidence
// is kept, and precision and recall come from the confusion counts.
func TestRecord(t *testing.T) {
	ev := NewEvaluation(3)
	ev.Record = true
	ev.Add([]float64{
		0.7, 0.2, 0.1, // 0 → 0
		0.1, 0.6, 0.3, // 1 → 1
		0.5, 0.3, 0.2, // 1 → 0
		math.NaN(), 0, 0, // 2 → non-finite
	}, []int64{0, 1, 1, 2})
	if len(ev.Predictions) != 4 {
		t.Fatalf("%d predictions, want 4", len(ev.Predictions))
	}
	p := ev.Predictions[1]
	if p.Index != 1 || p.Label != 1 || p.Pred != 1 || p.Confidence != 0.6 || len(p.Top5) != 3 || p.Top5[0] != 1 || p.Top5[1] != 2 || p.Top5[2] != 0 {
		t.Errorf("prediction 1 = %+v", p)
	}
	if ev.Predictions[3].Pred != -1 {
		t.Errorf("non-finite output predicted %d, want -1", ev.Predictions[3].Pred)
	}
	prec, rec := ev.PrecisionRecall()
	// Class 0: predicted twice, right once → 50; recall 1/1 → 100.
	// Class 1: predicted once, right → 100; recall 1/2 → 50. Class 2: never
	// predicted → precision NaN; its one image had NaN outputs → recall 0.
	want := [][2]float64{{50, 100}, {100, 50}}
	for c, w := range want {
		if float64(prec[c]) != w[0] || float64(rec[c]) != w[1] {
			t.Errorf("class %d: precision %v recall %v, want %v", c, prec[c], rec[c], w)
		}
	}
	if !math.IsNaN(float64(prec[2])) || rec[2] != 0 {
		t.Errorf("class 2: precision %v recall %v, want NaN and 0", prec[2], rec[2])
	}
}
