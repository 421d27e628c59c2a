package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/train"
)

// writeImageNet writes a tiny ILSVRC2012-shaped folder: JPEGs of three
// classes under train/ and val/, and the split files naming them.
func writeImageNet(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	root := t.TempDir()
	write := func(split, list string, n int) {
		var lines strings.Builder
		for i := range n {
			c := i % 3
			w, h := 48+4*i, 40+3*(i%5)
			img := image.NewRGBA(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					// Each class its own colour, so that there is something to learn.
					img.Set(x, y, color.RGBA{uint8(80 * c), uint8(x * 4), uint8(255 - 80*c), 255})
				}
			}
			rel := fmt.Sprintf("%s/n%08d/img_%d.JPEG", split, c, i)
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o755); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, img, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, rel), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&lines, "%s %d\n", rel, c)
		}
		if err := os.WriteFile(filepath.Join(root, "ImageNet_LT_"+list+".txt"), []byte(lines.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("train", "train", nTrain)
	write("val", "test", nTest)
	return root
}

// TestTrainOneEpoch trains ResNet-50 for an epoch on tiny JPEGs, through
// the whole pipeline: lists, decoding workers, the training and test
// transforms, LWR, evaluation, outputs.
func TestTrainOneEpoch(t *testing.T) {
	root := writeImageNet(t, 24, 9)
	out := t.TempDir()
	err := run([]string{"--data-dir", root, "--classes", "3", "--epochs", "1", "--warmup", "0", "--batch-size", "8", "--image-size", "32",
		"--workers", "2", "--device", "cpu", "--threads", "2", "--quiet", "--out", out})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s train.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Config.Model != "resnet50" || len(s.TrainCounts) != 3 || s.TrainCounts[0] != 8 || len(s.Final.PerClass) != 3 {
		t.Fatalf("summary: model %s, %d counts %v…, %d per-class accuracies", s.Config.Model, len(s.TrainCounts), s.TrainCounts[:3], len(s.Final.PerClass))
	}
	nan := func(n metrics.Number) bool { return math.IsNaN(float64(n)) }
	if !nan(s.Final.Many) || !nan(s.Final.Medium) || nan(s.Final.Few) || nan(s.Final.Top1) {
		t.Errorf("with 8 training images per class every class is few-shot: top-1 %v, many %v, medium %v, few %v",
			s.Final.Top1, s.Final.Many, s.Final.Medium, s.Final.Few)
	}
	for _, f := range []string{"config.json", "log.jsonl", "checkpoint.pt", "accuracy_by_count.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	// --eval on the run's test list, and on the val list (six of the
	// images) with --test-split val, each in its own folder.
	test, err := os.ReadFile(filepath.Join(root, "ImageNet_LT_test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	val := strings.Join(strings.SplitAfter(string(test), "\n")[:6], "")
	if err := os.WriteFile(filepath.Join(root, "ImageNet_LT_val.txt"), []byte(val), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		folder string
		images int
	}{{nil, "eval", 9}, {[]string{"--test-split", "val"}, "eval-val", 6}} {
		if err := run(append([]string{"--eval", out, "--threads", "2"}, c.args...)); err != nil {
			t.Fatalf("--eval %v: %v", c.args, err)
		}
		b, err := os.ReadFile(filepath.Join(out, c.folder, "predictions.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(string(b), "\n") - 1; lines != c.images {
			t.Errorf("--eval %v: %d predictions in %s, want %d", c.args, lines, c.folder, c.images)
		}
	}
}

func TestMissingImages(t *testing.T) {
	root := writeImageNet(t, 12, 6)
	if err := os.Remove(filepath.Join(root, "train/n00000001/img_4.JPEG")); err != nil {
		t.Fatal(err)
	}
	// Batch 4, lr 0.01: after one epoch of batch 8 at lr 0.1 on these 11
	// images, ResNet-50's barely updated batch-norm statistics overflow
	// float32 in eval mode, which the run reports as divergence.
	args := []string{"--data-dir", root, "--classes", "3", "--epochs", "1", "--warmup", "0", "--lr", "0.01", "--batch-size", "4", "--image-size", "32",
		"--device", "cpu", "--quiet", "--out", t.TempDir()}
	err := run(args)
	if err == nil || !strings.Contains(err.Error(), "ImageNet_LT_train.txt: line 5:") || !strings.Contains(err.Error(), "--skip-missing") {
		t.Fatalf("err = %v, want the list's line and the flag named", err)
	}
	if err := run(append(args, "--skip-missing")); err != nil {
		t.Fatalf("--skip-missing: %v", err)
	}
}

func TestRejectedBeforeWork(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--model", "vgg16"}, `--model "vgg16": want resnet32, resnet50 or resnext50`},
		{[]string{"--decoder", "pil"}, `--decoder "pil": want turbo or go`},
		{[]string{"--test-split", "train"}, `--test-split "train": want test or val`},
		{[]string{"--image-size", "8"}, "--image-size 8: want 32..1024"},
		{[]string{"--jitter", "2"}, "--jitter 2: want 0 ≤ v ≤ 1"},
		{[]string{"--data-dir", "/nonexistent"}, "ImageNet_LT_train.txt: not found"},
	}
	for _, k := range cases {
		if err := run(k.args); err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%v: err = %v, want %q", k.args, err, k.want)
		}
	}
}

// TestInterruptResumeExact: interrupted mid-epoch (as by SIGINT) and
// resumed, a run through the JPEG pipeline ends with exactly the metrics
// of an uninterrupted one: the resumed epoch decodes the same crops.
func TestInterruptResumeExact(t *testing.T) {
	root := writeImageNet(t, 24, 9)
	c := train.ImageNetConfig()
	c.DataDir, c.Classes, c.Epochs, c.Warmup, c.Milestones = root, 3, 2, 0, nil
	c.BatchSize, c.ImageSize, c.Workers, c.Device, c.Threads, c.EvalEvery = 8, 32, 2, "cpu", 2, 1
	c.Model = "resnet32" // the pipeline is under test; ResNet-50's 200 MB checkpoints would only slow it
	c.Out = t.TempDir()
	want, err := train.Run(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	cut := c
	cut.Out = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := train.Run(ctx, cut, nil, train.StopAfter(4, cancel)); !errors.Is(err, train.ErrInterrupted) { // epoch 2, step 1 of 3
		t.Fatalf("interrupted run: err = %v, want ErrInterrupted", err)
	}
	cut.Resume = true
	got, err := train.Run(context.Background(), cut, nil)
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(want.Final)
	gb, _ := json.Marshal(got.Final)
	if string(wb) != string(gb) {
		t.Errorf("resumed run's metrics differ:\n got %s\nwant %s", gb, wb)
	}
}
