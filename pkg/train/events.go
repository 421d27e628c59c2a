package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/tensorboard"
)

// TensorBoard event files of a run (--tensorboard, on by default): the
// scalars of each log.jsonl line at step = its epoch, histograms of the
// classifier's row norms and pairwise row cosines at each evaluation, the
// run's figures at its last epoch and its resolved config as text at step
// 0. `tensorboard --logdir runs/` shows every run under it.

// histogramBuckets is the buckets of the classifier's histograms: enough
// for the shape of 100 classes' 4,950 cosines.
const histogramBuckets = 30

// openEvents opens the run's event file: after a resume, the one it had,
// cut to the epochs of the checkpoint (done, the epochs it holds; -1 for a
// new run), so that nothing is written twice. The config goes in as text
// when the file is new.
func openEvents(c Config, done int) (*tensorboard.Writer, error) {
	w, created, err := tensorboard.Continue(c.Out, int64(done))
	if err != nil {
		return nil, fmt.Errorf("--tensorboard: %w", err)
	}
	if created || done < 0 {
		b, _ := json.MarshalIndent(c, "", "  ")
		// Indented: TensorBoard renders text as Markdown, and this as code.
		text := "    " + strings.ReplaceAll(string(b), "\n", "\n    ")
		if err := w.WriteText(0, "config", text); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// epochScalars are the scalars of one log.jsonl line; NaN values (a
// many/medium/few group without classes) are left out.
func epochScalars(line EpochLog) []tensorboard.Scalar {
	s := []tensorboard.Scalar{
		{Tag: "train/loss_bal", Value: line.LossBal},
		{Tag: "train/lr", Value: line.LR},
		{Tag: "train/images_per_sec", Value: line.ImagesSec},
		{Tag: "train/data_wait_seconds", Value: line.DataWait},
		{Tag: "train/seconds", Value: line.Seconds},
	}
	if line.Lambda > 0 || line.LossLWR > 0 {
		s = append(s, tensorboard.Scalar{Tag: "train/lwr_R", Value: line.LossLWR}, tensorboard.Scalar{Tag: "train/lwr_lambda", Value: line.Lambda})
	}
	if m := line.Test; m != nil {
		for _, v := range []struct {
			tag string
			v   metrics.Number
		}{{"top1", m.Top1}, {"top5", m.Top5}, {"many", m.Many}, {"medium", m.Medium}, {"few", m.Few}, {"nll", m.NLL}, {"ece", m.ECE}} {
			s = append(s, tensorboard.Scalar{Tag: "test/" + v.tag, Value: float64(v.v)})
		}
	}
	if w := line.Weights; w != nil {
		s = append(s,
			tensorboard.Scalar{Tag: "classifier/norm_min", Value: w.NormMin},
			tensorboard.Scalar{Tag: "classifier/norm_max", Value: w.NormMax},
			tensorboard.Scalar{Tag: "classifier/norm_mean", Value: w.NormMean},
			tensorboard.Scalar{Tag: "classifier/cos_max", Value: w.CosMax},
			tensorboard.Scalar{Tag: "classifier/cos_mean", Value: w.CosMean},
			tensorboard.Scalar{Tag: "classifier/frac_above_theta", Value: w.FracAboveTheta})
	}
	out := s[:0]
	for _, v := range s {
		if !math.IsNaN(v.Value) && !math.IsInf(v.Value, 0) {
			out = append(out, v)
		}
	}
	return out
}

// writeEpochEvents writes line's scalars, and with an evaluation the
// classifier's histograms, at step line.Epoch.
func writeEpochEvents(w *tensorboard.Writer, line EpochLog) error {
	step := int64(line.Epoch)
	if err := w.WriteScalars(step, epochScalars(line)); err != nil {
		return err
	}
	ws := line.Weights
	if ws == nil {
		return nil
	}
	if err := w.WriteHistogram(step, "classifier/row_norms", ws.Norms, histogramBuckets); err != nil {
		return err
	}
	var cos []float64
	for i := range ws.Cos {
		for j := i + 1; j < len(ws.Cos[i]); j++ {
			cos = append(cos, ws.Cos[i][j])
		}
	}
	return w.WriteHistogram(step, "classifier/row_cosines", cos, histogramBuckets)
}

// figures are the run's PNG figures, written as images at its last epoch.
var figures = []string{"curves.png", "accuracy_by_count.png", "norms.png", "reliability.png", "cosine_matrix.png"}

// writeFigureEvents writes the PNG figures in dir as images at step.
func writeFigureEvents(w *tensorboard.Writer, dir string, step int64) error {
	for _, name := range figures {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := w.WriteImage(step, "figures/"+strings.TrimSuffix(name, ".png"), b, cfg.Width, cfg.Height); err != nil {
			return err
		}
	}
	return nil
}
