// Package metrics scores a classifier on a long-tailed test set: top-1,
// mean per-class accuracy of the many-, medium- and few-shot classes (by
// training images per class), negative log-likelihood and expected
// calibration error, accumulated batch by batch.
package metrics

import (
	"math"
	"sort"
	"strconv"
)

// Number is a float64 that encodes NaN and ±Inf as JSON null (a group
// with no class, a class with no test image).
type Number float64

// String formats n with two decimals, or "-" for NaN (a group without classes).
func (n Number) String() string {
	if math.IsNaN(float64(n)) {
		return "-"
	}
	return strconv.FormatFloat(float64(n), 'f', 2, 64)
}

// MarshalJSON implements json.Marshaler.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler; null reads as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Number(f)
	return err
}

// Shot groups of the long-tailed literature, by training images per class.
const (
	ManyShot = 100 // more than 100: many
	FewShot  = 20  // fewer than 20: few; 20 to 100: medium
)

// Metrics summarise predictions on a test set.
type Metrics struct {
	Top1     Number   `json:"top1"`   // % of test images classified right
	Top5     Number   `json:"top5"`   // % of test images whose class is among the five most probable
	Many     Number   `json:"many"`   // mean per-class accuracy (%) of classes with > 100 training images; NaN if none
	Medium   Number   `json:"medium"` // likewise, 20 to 100
	Few      Number   `json:"few"`    // likewise, < 20
	NLL      Number   `json:"nll"`    // mean negative log-likelihood (nats) of the finite outputs; NaN if none
	ECE      Number   `json:"ece"`    // expected calibration error (%), 15 equal-width confidence bins; NaN if no finite output
	PerClass []Number `json:"per_class"`
	// NonFinite counts test images whose outputs were NaN or infinite
	// (a diverged network), counted as wrong and left out of NLL and ECE.
	NonFinite int `json:"non_finite,omitempty"`
	// Calibration is ECE's 15 equal-width confidence bins, [k/15, (k+1)/15)
	// for bin k (the last includes 1): a reliability diagram's data.
	Calibration []CalibrationBin `json:"calibration,omitempty"`
}

// CalibrationBin is the images whose top-1 probability fell in one
// confidence bin: how many, their mean top-1 probability and the fraction
// classified right (both 0 when the bin is empty).
type CalibrationBin struct {
	Count      int     `json:"count"`
	Confidence float64 `json:"confidence"`
	Accuracy   float64 `json:"accuracy"`
}

// Prediction is one test image's outcome.
type Prediction struct {
	Index      int     // position in the test set
	Label      int64   // true class
	Pred       int     // predicted class (-1 for non-finite outputs)
	Top5       []int   // the five most probable classes, most probable first (fewer with fewer classes)
	Confidence float64 // probability of Pred
}

// Evaluation accumulates predictions batch by batch.
type Evaluation struct {
	// Record keeps every image's Prediction (for predictions.csv) and the
	// confusion counts; off for the evaluations during training.
	Record      bool
	Predictions []Prediction
	Confusion   [][]int // [true][predicted] counts, with Record

	classes  int
	correct  []int
	total    []int
	top5     int // images whose class is in their five most probable
	nll      float64
	n        int
	binConf  [15]float64
	binAcc   [15]float64
	binCount [15]int
	bad      int // rows with a NaN or infinite probability
}

// NewEvaluation starts an evaluation over the given number of classes.
func NewEvaluation(classes int) *Evaluation {
	return &Evaluation{classes: classes, correct: make([]int, classes), total: make([]int, classes)}
}

// Add records one batch: probs [B·C] row-major softmax outputs, labels [B].
func (e *Evaluation) Add(probs []float64, labels []int64) {
	for i, y := range labels {
		row := probs[i*e.classes : (i+1)*e.classes]
		r := Summarize(row, y)
		if e.Record && r.Finite {
			e.record(row, y, r.Best)
		}
		e.AddResult(y, r)
	}
}

// Result is what an evaluation keeps of one image's softmax output.
type Result struct {
	Best   int     // the predicted class
	PLabel float64 // the probability of the true class
	Conf   float64 // the probability of Best
	InTop5 bool    // the true class is among the five most probable (fewer than five classes are more probable)
	Finite bool    // false when an output is NaN or infinite (the rest is then unset)
}

// Summarize reduces one image's softmax row to its Result.
func Summarize(row []float64, y int64) Result {
	if !finite(row) {
		return Result{}
	}
	best := 0
	for c, p := range row {
		if p > row[best] {
			best = c
		}
	}
	above := 0 // classes more probable than the true one
	for _, p := range row {
		if p > row[y] {
			above++
		}
	}
	return Result{Best: best, PLabel: row[y], Conf: row[best], InTop5: above < 5, Finite: true}
}

// AddResult records one image of label y. Adding the Results of a set of
// images in one order gives the same metrics, bit for bit, however they
// were computed (one process, or shards of it).
func (e *Evaluation) AddResult(y int64, r Result) {
	e.total[y]++
	if !r.Finite {
		e.bad++
		if e.Record {
			e.Predictions = append(e.Predictions, Prediction{Index: len(e.Predictions), Label: y, Pred: -1, Confidence: math.NaN()})
		}
		return
	}
	hit := r.Best == int(y)
	if hit {
		e.correct[y]++
	}
	if r.InTop5 {
		e.top5++
	}
	e.nll -= math.Log(math.Max(r.PLabel, 1e-300))
	e.n++
	bin := int(r.Conf * 15)
	if bin > 14 {
		bin = 14
	}
	e.binCount[bin]++
	e.binConf[bin] += r.Conf
	if hit {
		e.binAcc[bin]++
	}
}

// record keeps one image's prediction and confusion count.
func (e *Evaluation) record(row []float64, y int64, best int) {
	if e.Confusion == nil {
		e.Confusion = make([][]int, e.classes)
		for i := range e.Confusion {
			e.Confusion[i] = make([]int, e.classes)
		}
	}
	e.Confusion[y][best]++
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
	e.Predictions = append(e.Predictions, Prediction{Index: len(e.Predictions), Label: y, Pred: best,
		Top5: idx[:min(5, len(idx))], Confidence: row[best]})
}

// PrecisionRecall are per-class precision and recall (%) from the recorded
// confusion counts (images with non-finite outputs count as missed); NaN
// where a class was never predicted (precision) or has no test image
// (recall).
func (e *Evaluation) PrecisionRecall() (precision, recall []Number) {
	precision, recall = make([]Number, e.classes), make([]Number, e.classes)
	for c := 0; c < e.classes; c++ {
		var predicted, right int
		for k := 0; k < e.classes && e.Confusion != nil; k++ {
			predicted += e.Confusion[k][c]
		}
		if e.Confusion != nil {
			right = e.Confusion[c][c]
		}
		precision[c], recall[c] = Number(math.NaN()), Number(math.NaN())
		if predicted > 0 {
			precision[c] = Number(100 * float64(right) / float64(predicted))
		}
		if e.total[c] > 0 { // non-finite outputs count as missed
			recall[c] = Number(100 * float64(right) / float64(e.total[c]))
		}
	}
	return precision, recall
}

func finite(row []float64) bool {
	for _, p := range row {
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return false
		}
	}
	return true
}

// Metrics computes the summary, grouping classes by trainCounts.
func (e *Evaluation) Metrics(trainCounts []int64) Metrics {
	m := Metrics{PerClass: make([]Number, e.classes)}
	var right int
	var groups [3]struct {
		sum float64
		n   int
	}
	for c := 0; c < e.classes; c++ {
		right += e.correct[c]
		if e.total[c] > 0 {
			m.PerClass[c] = Number(100 * float64(e.correct[c]) / float64(e.total[c]))
		} else {
			m.PerClass[c] = Number(math.NaN())
			continue
		}
		g := 1
		switch {
		case trainCounts[c] > ManyShot:
			g = 0
		case trainCounts[c] < FewShot:
			g = 2
		}
		groups[g].sum += float64(m.PerClass[c])
		groups[g].n++
	}
	mean := func(g int) Number {
		if groups[g].n == 0 {
			return Number(math.NaN())
		}
		return Number(groups[g].sum / float64(groups[g].n))
	}
	m.NonFinite = e.bad
	// Undefined metrics are NaN (null in JSON), never a perfect 0: top-1
	// without test images, NLL and ECE without one finite output.
	m.Top1, m.Top5, m.NLL, m.ECE = Number(math.NaN()), Number(math.NaN()), Number(math.NaN()), Number(math.NaN())
	if e.n+e.bad > 0 {
		m.Top1 = Number(100 * float64(right) / float64(e.n+e.bad))
		m.Top5 = Number(100 * float64(e.top5) / float64(e.n+e.bad))
	}
	if e.n > 0 {
		m.NLL = Number(e.nll / float64(e.n))
		var ece float64
		m.Calibration = make([]CalibrationBin, len(e.binCount))
		for b, n := range e.binCount {
			if n > 0 {
				ece += math.Abs(e.binAcc[b]-e.binConf[b]) / float64(e.n)
				m.Calibration[b] = CalibrationBin{Count: n, Confidence: e.binConf[b] / float64(n), Accuracy: e.binAcc[b] / float64(n)}
			}
		}
		m.ECE = Number(100 * ece)
	}
	m.Many, m.Medium, m.Few = mean(0), mean(1), mean(2)
	return m
}
