package resnet

import (
	"math"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func countParams(vs *nn.VarStore) int64 {
	var n int64
	for _, t := range vs.TrainableVariables() {
		size := int64(1)
		for _, s := range t.MustSize() {
			size *= s
		}
		n += size
	}
	return n
}

// TestParameterCounts: the references' counts, from PyTorch 1.13:
// torchvision resnet50 and resnext50_32x4d (1000 classes), and the
// LDAM-DRW resnet32 (option-A shortcuts have no parameters).
func TestParameterCounts(t *testing.T) {
	cases := []struct {
		name  string
		build func(*nn.Path) error
		want  int64
	}{
		{"resnet32-c100", func(p *nn.Path) error { _, err := ResNet32(p, Options{Classes: 100, InChannels: 3}); return err }, 470_004},
		{"resnet32-c10", func(p *nn.Path) error { _, err := ResNet32(p, Options{Classes: 10, InChannels: 3}); return err }, 464_154},
		{"resnet50", func(p *nn.Path) error { _, err := ResNet50(p, Options{Classes: 1000, InChannels: 3}); return err }, 25_557_032},
		{"resnext50", func(p *nn.Path) error { _, err := ResNeXt50(p, Options{Classes: 1000, InChannels: 3}); return err }, 25_028_904},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := nn.NewVarStore(gotch.CPU)
			if err := c.build(vs.Root()); err != nil {
				t.Fatal(err)
			}
			if got := countParams(vs); got != c.want {
				t.Errorf("%d parameters, want %d", got, c.want)
			}
		})
	}
}

// TestTorchvisionNames: a torchvision state dict's keys exist here.
func TestTorchvisionNames(t *testing.T) {
	vs := nn.NewVarStore(gotch.CPU)
	if _, err := ResNet50(vs.Root(), Options{Classes: 1000, InChannels: 3}); err != nil {
		t.Fatal(err)
	}
	vars := vs.Variables()
	for _, name := range []string{
		"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
		"layer1.0.downsample.1.running_var", "layer2.3.bn3.bias", "layer4.2.conv3.weight", "fc.weight", "fc.bias",
	} {
		if _, ok := vars[name]; !ok {
			t.Errorf("no variable %q", name)
		}
	}
	if _, ok := vars["layer1.1.downsample.0.weight"]; ok {
		t.Error("layer1.1 has a downsample; only the first block of a stage does")
	}
	if n := len(vars); n != 267 {
		t.Errorf("%d variables, want 267 (torchvision state dict keys less the 53 num_batches_tracked)", n)
	}
}

func TestForwardShapes(t *testing.T) {
	cases := []struct {
		name     string
		channels int64
		size     int64
		build    func(*nn.Path, Options) (Net, error)
		feat     int64
	}{
		{"resnet32-rgb", 3, 32, func(p *nn.Path, o Options) (Net, error) { return ResNet32(p, o) }, 64},
		{"resnet32-gray", 1, 28, func(p *nn.Path, o Options) (Net, error) { return ResNet32(p, o) }, 64},
		{"resnet50", 3, 64, func(p *nn.Path, o Options) (Net, error) { return ResNet50(p, o) }, 2048},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := nn.NewVarStore(gotch.CPU)
			net, err := c.build(vs.Root(), Options{Classes: 7, InChannels: c.channels})
			if err != nil {
				t.Fatal(err)
			}
			x := ts.MustRandn([]int64{2, c.channels, c.size, c.size}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			for _, train := range []bool{true, false} {
				logits, feat := net.ForwardT(x, train)
				if got := logits.MustSize(); !slices.Equal(got, []int64{2, 7}) {
					t.Errorf("train=%v: logits %v, want [2 7]", train, got)
				}
				if got := feat.MustSize(); !slices.Equal(got, []int64{2, c.feat}) {
					t.Errorf("train=%v: features %v, want [2 %d]", train, got, c.feat)
				}
				logits.MustDrop()
				feat.MustDrop()
			}
			if got := net.Head().Weight.MustSize(); !slices.Equal(got, []int64{7, c.feat}) {
				t.Errorf("classifier weight %v, want [7 %d]", got, c.feat)
			}
		})
	}
}

// TestHeInit: convolution weights have std √(2/fan), not gotch's N(0,1).
func TestHeInit(t *testing.T) {
	vs := nn.NewVarStore(gotch.CPU)
	if _, err := ResNet32(vs.Root(), Options{Classes: 10, InChannels: 3}); err != nil {
		t.Fatal(err)
	}
	w := vs.Variables()["layer3.4.conv2.weight"] // [64,64,3,3], fan in 576
	std := w.MustStd(true, false).Float64Values(true)[0]
	want := math.Sqrt(2.0 / 576)
	if math.Abs(std-want) > 0.05*want {
		t.Errorf("std %.4f, want %.4f ± 5%%", std, want)
	}
}

func TestNormedClassifier(t *testing.T) {
	vs := nn.NewVarStore(gotch.CPU)
	net, err := ResNet32(vs.Root(), Options{Classes: 5, InChannels: 3, NormedClassifier: true})
	if err != nil {
		t.Fatal(err)
	}
	x := ts.MustRandn([]int64{4, 3, 32, 32}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	logits, feat := net.ForwardT(x, false)
	defer feat.MustDrop()
	for _, v := range logits.Float64Values(true) {
		if math.Abs(v) > 1+1e-5 {
			t.Fatalf("cosine logit %v outside [-1, 1]", v)
		}
	}
	if net.Head().Bias != nil {
		t.Error("normed classifier has a bias")
	}
}

func TestOptionsRejected(t *testing.T) {
	vs := nn.NewVarStore(gotch.CPU)
	if _, err := ResNet32(vs.Root(), Options{Classes: 1, InChannels: 3}); err == nil {
		t.Error("1 class accepted")
	}
	if _, err := ResNet50(vs.Root(), Options{Classes: 10, InChannels: 0}); err == nil {
		t.Error("0 channels accepted")
	}
}
