package train

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sugarme/gotch/nn"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/report"
)

// Evaluation is eval.json: a checkpoint's test metrics with per-class
// precision and recall.
type Evaluation struct {
	Checkpoint  string           `json:"checkpoint"`
	Epoch       int              `json:"epoch"` // epochs the checkpoint had trained
	Config      Config           `json:"config"`
	TrainCounts []int64          `json:"train_counts"`
	Metrics     metrics.Metrics  `json:"metrics"`
	Precision   []metrics.Number `json:"precision"`             // per class, %
	Recall      []metrics.Number `json:"recall"`                // per class, %
	ClassNames  []string         `json:"class_names,omitempty"` // by label, where the data set has names
}

// EvaluateCheckpoint evaluates the network of ckpt (a checkpoint.pt, or a
// run folder holding one) on its configuration's test set, on device
// (cpu, cuda, auto) with threads CPU threads (0: every core), and writes
// into out: eval.json, predictions.csv (index, label, prediction, top-5,
// confidence per test image) and confusion.png. The architecture and data
// come from the checkpoint.
//
// split, when not "", is the ImageNet-LT list to evaluate on instead of the
// run's own (test or val); fused is the --fused-eval mode (FusedAuto,
// FusedOn, FusedOff).
func EvaluateCheckpoint(ctx context.Context, ckpt, device string, threads int, split, fused, out string) (Evaluation, error) {
	if st, err := os.Stat(ckpt); err == nil && st.IsDir() {
		ckpt = filepath.Join(ckpt, CheckpointFile)
	}
	var ev Evaluation
	err := libtorch.OnThread(func() error {
		st, named, err := readCheckpointState(ckpt)
		if err != nil {
			return err
		}
		c := st.Config
		c.Device = device
		if c.MemoryFormat == libtorch.Blocked {
			// Blocked activations are a training layout (and need a
			// build with oneDNN's headers): evaluate as auto does.
			c.MemoryFormat = ""
		}
		if split != "" {
			if c.Dataset != "imagenet-lt" {
				return fmt.Errorf("--test-split %s: only ImageNet-LT has lists to choose from; %s was trained on %s", split, ckpt, c.Dataset)
			}
			if split != "test" && split != "val" {
				return fmt.Errorf("--test-split %q: want test or val", split)
			}
			c.TestSplit = split
		}
		dev, err := libtorch.ParseDevice(device)
		if err != nil {
			return fmt.Errorf("--device: %w", err)
		}
		useThreads(threads)
		trainSrc, testSrc, _, err := sources(c, dev)
		if err != nil {
			return err
		}
		vs := nn.NewVarStore(dev)
		net, err := buildNetwork(vs, c, trainSrc)
		if err != nil {
			return err
		}
		// The network's variables (the checkpoint also holds the LWR
		// projection and the momentum, which evaluation does not need).
		if err := loadCheckpoint(ckpt, named, vs, nil); err != nil {
			return err
		}
		if net, err = inMemoryFormat(c.memoryFormat(dev), vs, nil, net); err != nil {
			return err
		}
		counts := trainSrc.Counts()
		e := metrics.NewEvaluation(testSrc.Classes())
		e.Record = true
		net, done, err := evalNet(net, fused)
		if err != nil {
			return err
		}
		defer done()
		if err := evaluateInto(ctx, e.Add, net, testSrc, nil, c.evalBatch(dev)); err != nil {
			return err
		}
		ev = Evaluation{Checkpoint: ckpt, Epoch: st.Epoch, Config: c, TrainCounts: counts, Metrics: e.Metrics(counts)}
		ev.Precision, ev.Recall = e.PrecisionRecall()
		ev.ClassNames = data.ClassNames(c.Dataset)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		if err := writeJSON(filepath.Join(out, "eval.json"), ev); err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString("index,label,prediction,top5,confidence\n")
		for _, p := range e.Predictions {
			top := make([]string, len(p.Top5))
			for i, k := range p.Top5 {
				top[i] = strconv.Itoa(k)
			}
			fmt.Fprintf(&b, "%d,%d,%d,%s,%s\n", p.Index, p.Label, p.Pred, strings.Join(top, " "), strconv.FormatFloat(p.Confidence, 'g', 6, 64))
		}
		if err := atomicfile.WriteFile(filepath.Join(out, "predictions.csv"), []byte(b.String())); err != nil {
			return err
		}
		if e.Confusion != nil {
			return report.ConfusionMatrix(filepath.Join(out, "confusion.png"), e.Confusion, data.ClassNames(c.Dataset),
				fmt.Sprintf("%s, %s, epoch %d: confusion (rows sum to 1)", c.Dataset, c.Loss.Name, st.Epoch))
		}
		return nil
	})
	return ev, err
}
