package train

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/resnet"
	"github.com/lwr-go/lwr/pkg/safetensors"
)

// torchPython is Debian's python3 with python3-torch and
// python3-torchvision (.ci/run installs them), or "" without them.
func torchPython(t *testing.T) string {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch, torchvision").Run(); err != nil {
		t.Skipf("needs Debian's python3-torch and python3-torchvision: %v", err)
	}
	return py
}

// weightsModel builds one of the models the test moves across, with a
// Go-side seed.
func weightsModel(model string, classes int64, normed bool, seed int64) (*nn.VarStore, resnet.Net, int64, error) {
	libtorch.ManualSeed(seed)
	vs := nn.NewVarStore(gotch.CPU)
	o := resnet.Options{Classes: classes, InChannels: 3, NormedClassifier: normed}
	if model == "resnet50" {
		net, err := resnet.ResNet50(vs.Root(), o)
		return vs, net, 64, err
	}
	net, err := resnet.ResNet32(vs.Root(), o)
	return vs, net, 32, err
}

// evalLogits runs net in eval mode on x and returns the logits as float32.
func evalLogits(net resnet.Net, x *ts.Tensor) []float32 {
	var out []float32
	libtorch.NoGrad(func() {
		logits, feat := net.ForwardT(x, false)
		feat.MustDrop()
		for _, v := range logits.Float64Values(true) {
			out = append(out, float32(v))
		}
	})
	return out
}

func namedVars(vs *nn.VarStore) []ts.NamedTensor {
	var named []ts.NamedTensor
	for name, v := range vs.Variables() {
		v := v
		named = append(named, ts.NamedTensor{Name: name, Tensor: &v})
	}
	return named
}

// TestWeightsInPyTorch (issue 13): a ResNet-32 (plain and with LDAM's
// normalised classifier) and a ResNet-50 exported by lwr load into
// PyTorch's networks — the LDAM-DRW layout and torchvision's resnet50 —
// with load_state_dict(strict=True) and give lwr's logits (1e-5); a
// network PyTorch initialised, imported from safetensors and from the .pth
// torch.save writes, gives PyTorch's logits; import is
// strict, naming a missing key.
func TestWeightsInPyTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PyTorch")
	}
	py := torchPython(t)
	for _, k := range []struct {
		model   string
		classes int64
		normed  bool
	}{{"resnet32", 10, false}, {"resnet32", 10, true}, {"resnet50", 5, false}} {
		name := k.model
		if k.normed {
			name += "-ldam"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			flag := "0"
			if k.normed {
				flag = "1"
			}
			err := libtorch.OnThread(func() error {
				vs, net, side, err := weightsModel(k.model, k.classes, k.normed, 3)
				if err != nil {
					return err
				}
				// Move the batch-norm statistics off their initial values.
				libtorch.NoGrad(func() {
					for i := 0; i < 2; i++ {
						x := ts.MustRandn([]int64{8, 3, side, side}, gotch.Float, gotch.CPU)
						logits, feat := net.ForwardT(x, true)
						logits.MustDrop()
						feat.MustDrop()
						x.MustDrop()
					}
				})
				x := ts.MustRandn([]int64{4, 3, side, side}, gotch.Float, gotch.CPU)
				defer x.MustDrop()
				logits := evalLogits(net, x)
				weights, batch := filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "b.safetensors")
				if err := exportNamed(namedVars(vs), k.normed, weights, nil); err != nil {
					return err
				}
				xs, err := toSafetensor(x)
				if err != nil {
					return err
				}
				if err := safetensors.Write(batch, map[string]safetensors.Tensor{"x": xs,
					"logits": {DType: "F32", Shape: []int64{4, k.classes}, F32: logits}}, nil); err != nil {
					return err
				}
				out, err := exec.Command(py, "testdata/check_weights.py", "check", k.model, strconv.FormatInt(k.classes, 10), flag, weights, batch).CombinedOutput()
				if err != nil {
					t.Errorf("PyTorch with lwr's weights: %v\n%s", err, out)
				} else {
					t.Logf("%s", strings.TrimSpace(string(out)))
				}
				runtime.KeepAlive(vs)

				// PyTorch's own network, into lwr.
				// PyTorch's own network, into lwr: as safetensors and as the
				// .pth torch.save writes.
				pthFile := filepath.Join(dir, "w.pth")
				if out, err := exec.Command(py, "testdata/check_weights.py", "make", k.model, strconv.FormatInt(k.classes, 10), flag, weights, batch, pthFile).CombinedOutput(); err != nil {
					t.Fatalf("PyTorch's network: %v\n%s", err, out)
				}
				b, _, err := safetensors.Read(batch)
				if err != nil {
					return err
				}
				xb := ts.MustOfSlice(b["x"].F32).MustView(b["x"].Shape, true)
				defer xb.MustDrop()
				var vs2 *nn.VarStore
				for seed, file := range []string{weights, pthFile} {
					vs, net2, _, err := weightsModel(k.model, k.classes, k.normed, int64(99+seed))
					if err != nil {
						return err
					}
					if err := ImportWeights(vs, file, k.normed); err != nil {
						return err
					}
					got, want := evalLogits(net2, xb), b["logits"].F32
					var diff, top float64
					for i := range want {
						diff = math.Max(diff, math.Abs(float64(got[i]-want[i])))
						top = math.Max(top, math.Abs(float64(want[i])))
					}
					if diff > 1e-5*top {
						t.Errorf("PyTorch's network imported from %s: logits differ by %.3g (relative %.3g)", filepath.Base(file), diff, diff/top)
					}
					vs2 = vs
				}

				// Strict: a missing key is named.
				tensors, _, err := safetensors.Read(weights)
				if err != nil {
					return err
				}
				delete(tensors, "layer1.0.conv1.weight")
				short := filepath.Join(dir, "short.safetensors")
				if err := safetensors.Write(short, tensors, nil); err != nil {
					return err
				}
				if err := ImportWeights(vs2, short, k.normed); err == nil || !strings.Contains(err.Error(), `no tensor "layer1.0.conv1.weight"`) {
					t.Errorf("import without a key: err = %v, want the key named", err)
				}
				runtime.KeepAlive(vs2)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStage2 (issue 13): decoupled classifier retraining from a stage-one
// network: cRT leaves the backbone (weights and batch-norm statistics)
// exactly as imported and trains a new classifier; LWS leaves the whole
// network as imported and learns per-class scales.
func TestStage2(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	dir := t.TempDir()
	one := tinyConfig(filepath.Join(dir, "one"))
	one.Loss.Name, one.LWR = "ce", false
	if _, err := Run(context.Background(), one, nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "one.safetensors")
	if err := ExportWeights(filepath.Join(one.Out, CheckpointFile), file); err != nil {
		t.Fatal(err)
	}
	stage1, _, err := safetensors.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b []float32) bool { return slices.Equal(a, b) }

	crt := tinyConfig(filepath.Join(dir, "crt"))
	crt.Loss.Name, crt.InitFrom, crt.Stage2, crt.Sampler = "ce", file, "crt", "class"
	if _, err := Run(context.Background(), crt, nil); err != nil {
		t.Fatal(err)
	}
	after := filepath.Join(dir, "crt.safetensors")
	if err := ExportWeights(filepath.Join(crt.Out, CheckpointFile), after); err != nil {
		t.Fatal(err)
	}
	stage2, _, err := safetensors.Read(after)
	if err != nil {
		t.Fatal(err)
	}
	for name, t1 := range stage1 {
		if t1.DType != "F32" {
			continue
		}
		head := strings.HasPrefix(name, "linear.")
		if eq := same(t1.F32, stage2[name].F32); head == eq {
			t.Errorf("cRT: %s changed %v, want %v", name, !eq, head)
		}
	}

	lws := tinyConfig(filepath.Join(dir, "lws"))
	lws.Loss.Name, lws.LWR, lws.InitFrom, lws.Stage2, lws.Sampler = "ce", false, file, "lws", "class"
	if _, err := Run(context.Background(), lws, nil); err != nil {
		t.Fatal(err)
	}
	var scales []float32
	err = libtorch.OnThread(func() error {
		_, named, err := readCheckpointState(filepath.Join(lws.Out, CheckpointFile))
		if err != nil {
			return err
		}
		for _, nt := range named {
			name, ok := strings.CutPrefix(nt.Name, "model.")
			if !ok {
				continue
			}
			got, err := toSafetensor(nt.Tensor)
			if err != nil {
				return err
			}
			if name == "lws.scale" {
				scales = got.F32
				moved := false
				for _, v := range got.F32 {
					moved = moved || v != 1
				}
				if !moved {
					t.Error("LWS: the scales did not move from 1")
				}
				continue
			}
			if got.DType == "F32" && !same(got.F32, stage1[name].F32) {
				t.Errorf("LWS: %s changed", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Exported, the LWS scales are folded into the classifier: row c of
	// linear.weight and linear.bias is stage one's times s_c.
	exported := filepath.Join(dir, "lws.safetensors")
	if err := ExportWeights(filepath.Join(lws.Out, CheckpointFile), exported); err != nil {
		t.Fatal(err)
	}
	got, _, err := safetensors.Read(exported)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["lws.scale"]; ok {
		t.Error("the export holds lws.scale")
	}
	w, w1 := got["linear.weight"], stage1["linear.weight"]
	b, b1 := got["linear.bias"], stage1["linear.bias"]
	d := int(w.Shape[1])
	for c := range b.F32 {
		s := scales[c]
		if math.Abs(float64(b.F32[c]-b1.F32[c]*s)) > 1e-6 || math.Abs(float64(w.F32[c*d]-w1.F32[c*d]*s)) > 1e-6 {
			t.Errorf("class %d: bias %v, weight[0] %v; want stage one's × %v (%v, %v)", c, b.F32[c], w.F32[c*d], s, b1.F32[c]*s, w1.F32[c*d]*s)
		}
	}
	if !same(got["conv1.weight"].F32, stage1["conv1.weight"].F32) {
		t.Error("the backbone changed in the export")
	}
}

// TestImportMatchesBeforeDecoding (issue 26): a weight file's names and
// shapes are matched to the model before its tensors are decoded, so that
// a file claiming far more than the model holds costs no more than the
// model: a 64 MiB tensor the model lacks, or a classifier of the wrong
// shape, is refused without being read.
func TestImportMatchesBeforeDecoding(t *testing.T) {
	dir := t.TempDir()
	err := libtorch.OnThread(func() error {
		vs, _, _, err := weightsModel("resnet32", 10, false, 1)
		if err != nil {
			return err
		}
		defer runtime.KeepAlive(vs)
		good := filepath.Join(dir, "good.safetensors")
		if err := exportNamed(namedVars(vs), false, good, nil); err != nil {
			return err
		}
		tensors, _, err := safetensors.Read(good)
		if err != nil {
			return err
		}
		const big = 16 << 20 // float32s: 64 MiB
		extra := maps.Clone(tensors)
		extra["projector.weight"] = safetensors.Tensor{DType: "F32", Shape: []int64{4096, big / 4096}, F32: make([]float32, big)}
		wrong := maps.Clone(tensors)
		w := wrong["linear.weight"]
		wrong["linear.weight"] = safetensors.Tensor{DType: "F32", Shape: []int64{big / 64, 64}, F32: make([]float32, big)}
		for _, tc := range []struct {
			name    string
			tensors map[string]safetensors.Tensor
			want    string
		}{
			{"extra", extra, `"projector.weight" is not a variable of the model (1 such keys`},
			{"shape", wrong, fmt.Sprintf(`"linear.weight" has shape [%d 64], the model's %v`, big/64, w.Shape)},
		} {
			path := filepath.Join(dir, tc.name+".safetensors")
			if err := safetensors.Write(path, tc.tensors, nil); err != nil {
				return err
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := ImportWeights(vs, path, false)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: err = %v, want %q naming the file", tc.name, err, tc.want)
			}
			// The model's own tensors (0.47 M values) may be decoded; the
			// 64 MiB one may not.
			if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
				t.Errorf("%s: allocated %d MiB, want < 16 (the 64 MiB tensor was decoded)", tc.name, n>>20)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
