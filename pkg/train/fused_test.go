package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/fusedtest"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// TestFusedEvaluation: --fused-eval on evaluates the network through
// resnet.Fold — also inside the channels-last and decoupled (LWS) wrappers,
// and a decoupled network whose frozen backbone stage two folded for the
// run — with the same softmax outputs as off up to float32 rounding; off and
// a network that cannot be folded under auto run the network as it is; on
// refuses a float64 network, saying why; only stage two folds for the run.
func TestFusedEvaluation(t *testing.T) {
	fusedtest.Require(t)
	c := tinyConfig(t.TempDir())
	err := libtorch.OnThread(func() error {
		_, test, _, err := sources(c, gotch.CPU)
		if err != nil {
			return err
		}
		for _, wrap := range []string{"plain", "channels-last", "lws"} {
			vs := nn.NewVarStore(gotch.CPU)
			net, err := newModel(vs.Root(), c, test)
			if err != nil {
				return err
			}
			fusedtest.PerturbBatchNorms(vs)
			switch wrap {
			case "channels-last":
				if net, err = inMemoryFormat(libtorch.ChannelsLast, vs, nil, net); err != nil {
					return err
				}
			case "lws":
				scale := ts.MustRand([]int64{int64(test.Classes())}, gotch.Float, gotch.CPU)
				net = decoupled{Net: net, scale: scale}
			}
			probs := map[string][]float64{}
			modes := []string{FusedOff, FusedOn}
			if wrap == "lws" {
				modes = append(modes, "frozen")
			}
			for _, mode := range modes {
				n, done, err := evalNet(net, mode)
				if mode == "frozen" {
					// Stage two folds its backbone once for the run; its
					// evaluation passes then run that network as it is.
					var frozen resnet.Net
					var free func()
					if frozen, free, err = frozenNet(net, FusedOn); err != nil {
						t.Fatalf("%s, frozen: %v", wrap, err)
					}
					defer free()
					n, done, err = evalNet(frozen, FusedOn)
				}
				if err != nil {
					t.Fatalf("%s, %s: %v", wrap, mode, err)
				}
				folded := false
				switch x := n.(type) {
				case *resnet.Folded:
					folded = true
				case decoupled:
					_, folded = x.Net.(*resnet.Folded)
				}
				if folded != (mode != FusedOff) {
					t.Errorf("%s, %s: folded = %v", wrap, mode, folded)
				}
				err = evaluateInto(context.Background(), func(p []float64, _ []int64) {
					probs[mode] = append(probs[mode], p...)
				}, n, test, nil, 16)
				done()
				if err != nil {
					return err
				}
			}
			off := probs[FusedOff]
			for _, mode := range modes[1:] {
				on := probs[mode]
				if len(off) == 0 || len(on) != len(off) {
					t.Fatalf("%s, %s: %d and %d outputs", wrap, mode, len(on), len(off))
				}
				worst := 0.0
				for i := range off {
					worst = math.Max(worst, math.Abs(on[i]-off[i]))
				}
				if worst > 1e-4 {
					t.Errorf("%s, %s: fused probabilities differ by up to %.3g, want ≤ 1e-4", wrap, mode, worst)
				}
			}
		}

		prev := gotch.SetDefaultDType(gotch.Double)
		net64, err := newModel(nn.NewVarStore(gotch.CPU).Root(), c, test)
		gotch.SetDefaultDType(prev)
		if err != nil {
			return err
		}
		if _, _, err := evalNet(net64, FusedOn); err == nil || !strings.Contains(err.Error(), "--fused-eval on") || !strings.Contains(err.Error(), "float32") {
			t.Errorf("float64 network, on: %v, want an error naming the flag and float32", err)
		}
		if n, done, err := evalNet(net64, FusedAuto); err != nil || n != net64 {
			t.Errorf("float64 network, auto: %T, %v; want the network itself", n, err)
		} else {
			done()
		}
		if n, done, err := frozenNet(net64, FusedOn); err != nil || n != net64 {
			t.Errorf("a network without a frozen backbone: %T, %v; want the network itself", n, err)
		} else {
			done()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFusedOnRefusedUpFront: on a build without the fused convolutions
// (PyPI's torch: CI's second phase), --fused-eval on fails before the first
// epoch, naming the flag, instead of after training up to the first
// evaluation.
func TestFusedOnRefusedUpFront(t *testing.T) {
	if libtorch.FusedAvailable() {
		t.Skip("this build folds; the refusal is checked where it cannot (PyPI's torch)")
	}
	c := tinyConfig(t.TempDir())
	c.FusedEval = FusedOn
	_, err := Run(context.Background(), c, nil)
	if err == nil || !strings.Contains(err.Error(), "--fused-eval on") {
		t.Fatalf("err = %v, want one naming --fused-eval on", err)
	}
	if b, err := os.ReadFile(filepath.Join(c.Out, LogFile)); err == nil && len(b) > 0 {
		t.Errorf("an epoch was trained before the refusal:\n%s", b)
	}
}

// TestFusedBatchNormFlag: --fused-bn reaches the network. On the same
// weights and channels-last float32 input, a training forward with auto
// (lwr's batch norm + ReLU kernel) and one with off (libtorch's ops) agree
// to float32 rounding but not bit for bit — the kernel ran in one only —
// while two networks built with off agree exactly.
func TestFusedBatchNormFlag(t *testing.T) {
	c := tinyConfig(t.TempDir())
	err := libtorch.OnThread(func() error {
		_, test, _, err := sources(c, gotch.CPU)
		if err != nil {
			return err
		}
		var first *nn.VarStore
		logits := map[string]*ts.Tensor{}
		x := ts.MustRandn([]int64{16, int64(test.Channels()), 28, 28}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		for _, run := range []string{FusedAuto, FusedOff, FusedOff + " again"} {
			c.FusedBN = strings.Fields(run)[0]
			vs := nn.NewVarStore(gotch.CPU)
			net, err := newModel(vs.Root(), c, test)
			if err != nil {
				return err
			}
			if first == nil {
				first = vs
			} else if err := vs.Copy(first); err != nil {
				return err
			}
			if net, err = inMemoryFormat(libtorch.ChannelsLast, vs, nil, net); err != nil {
				return err
			}
			out, feat := net.ForwardT(x, true)
			feat.MustDrop()
			logits[run] = out
			defer out.MustDrop()
		}
		equal := func(a, b string) bool { return logits[a].MustEqual(logits[b], false) }
		if !equal(FusedOff, FusedOff+" again") {
			t.Error("two networks with --fused-bn off differ")
		}
		if equal(FusedAuto, FusedOff) {
			t.Error("--fused-bn auto and off gave the same bits: the flag does not reach the batch norms")
		}
		var diff, scale float64
		off := logits[FusedOff].Float64Values()
		for i, v := range logits[FusedAuto].Float64Values() {
			diff, scale = math.Max(diff, math.Abs(v-off[i])), math.Max(scale, math.Abs(off[i]))
		}
		if diff > 1e-4*math.Max(scale, 1) {
			t.Errorf("--fused-bn auto and off differ by %g (logits up to %g), want float32 rounding", diff, scale)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMemoryFormatAuto: auto picks blocked activations for ResNet-32 and
// ResNet-50 on a CPU whose oneDNN computes in 8- or 16-channel blocks,
// channels-last where it does not apply (ResNeXt-50, --fused-bn off) or
// oneDNN prefers another layout, contiguous on a GPU, and an explicit
// choice as given.
func TestMemoryFormatAuto(t *testing.T) {
	fusedtest.Require(t)
	autoCPU := libtorch.ChannelsLast
	if b := libtorch.PreferredBlock(); b == 8 || b == 16 {
		autoCPU = libtorch.Blocked
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		dev  gotch.Device
		want string
	}{
		{"resnet32 cpu", func(c *Config) {}, gotch.CPU, autoCPU},
		{"resnet32 gpu", func(c *Config) {}, gotch.CudaIfAvailable(), ""},
		{"resnet50", func(c *Config) { *c = ImageNetConfig() }, gotch.CPU, autoCPU},
		{"resnext50", func(c *Config) { *c = ImageNetConfig(); c.Model = "resnext50" }, gotch.CPU, libtorch.ChannelsLast},
		{"fused-bn off", func(c *Config) { c.FusedBN = FusedOff }, gotch.CPU, libtorch.ChannelsLast},
		{"asked channels-last", func(c *Config) { c.MemoryFormat = libtorch.ChannelsLast }, gotch.CPU, libtorch.ChannelsLast},
		{"asked blocked", func(c *Config) { c.MemoryFormat = libtorch.Blocked }, gotch.CPU, libtorch.Blocked},
		{"resnet50 asked blocked", func(c *Config) { *c = ImageNetConfig(); c.MemoryFormat = libtorch.Blocked }, gotch.CPU, libtorch.Blocked},
	} {
		cfg := DefaultConfig()
		c.edit(&cfg)
		want := c.want
		if want == "" { // a GPU where there is one, else this CPU
			want = autoCPU
			if c.dev.IsCuda() {
				want = libtorch.Contiguous
			}
		}
		if got := cfg.memoryFormat(c.dev); got != want {
			t.Errorf("%s: %s, want %s", c.name, got, want)
		}
	}
}

// TestLayout: the layout provenance records is the resolved memory format,
// with the block and the convolution algorithm where blocked.
func TestLayout(t *testing.T) {
	fusedtest.Require(t)
	blocked := fmt.Sprintf("blocked%d", libtorch.TrainingBlock())
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.MemoryFormat = libtorch.ChannelsLast }, "channels-last"},
		{func(c *Config) { c.MemoryFormat = libtorch.Contiguous }, "contiguous"},
		{func(c *Config) { c.MemoryFormat = libtorch.Blocked }, blocked + ", auto convolutions"},
		{func(c *Config) { c.MemoryFormat, c.ConvAlgorithm = libtorch.Blocked, "direct" }, blocked + ", direct convolutions"},
		{func(c *Config) { c.MemoryFormat, c.ConvAlgorithm = libtorch.Blocked, "winograd" }, blocked + ", winograd convolutions"},
	} {
		cfg := DefaultConfig()
		c.edit(&cfg)
		if got := cfg.layout(gotch.CPU); got != c.want {
			t.Errorf("%s / %q: layout %q, want %q", cfg.MemoryFormat, cfg.ConvAlgorithm, got, c.want)
		}
	}
}
