// Command replay writes what a cmd/cifar run draws at random: its initial
// weights (as the trainer builds them from --seed) and, for every epoch,
// the order of the training images and each image's crop offsets and flip.
// bench/torch_train.py --replay DIR then trains the very same run in
// PyTorch, so that a difference in results is a difference in the
// implementations, not in luck.
//
//	go run ./bench/replay --seed 4 --n 1485 --epochs 20 --out DIR
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/data"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// epoch is one line of stream.jsonl.
type epoch struct {
	Order []int64 `json:"order"` // indices into the training subset
	DY    []int   `json:"dy"`    // crop offsets in the padded image, per position in Order
	DX    []int   `json:"dx"`
	Flip  []bool  `json:"flip"`
}

func main() {
	seed := pflag.Int64("seed", 0, "the run's --seed")
	n := pflag.Int("n", 1485, "training images (Fashion-MNIST-LT IF 100: 1,485)")
	classes := pflag.Int64("classes", 10, "classes")
	channels := pflag.Int64("channels", 1, "image channels")
	epochs := pflag.Int("epochs", 20, "epochs")
	batch := pflag.Int("batch-size", 128, "batch size")
	pad := pflag.Int("pad", 4, "crop padding")
	out := pflag.String("out", "", "output folder: init.pt, stream.jsonl")
	pflag.Parse()
	if err := run(*seed, *n, *classes, *channels, *epochs, *batch, *pad, *out); err != nil {
		fmt.Fprintln(os.Stderr, "replay:", err)
		os.Exit(1)
	}
}

func run(seed int64, n int, classes, channels int64, epochs, batch, pad int, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// The initial weights, drawn as pkg/train draws them.
	libtorch.ManualSeed(seed)
	vs := nn.NewVarStore(gotch.CPU)
	if _, err := resnet.ResNet32(vs.Root(), resnet.Options{Classes: classes, InChannels: channels}); err != nil {
		return err
	}
	if _, err := lwr.New(vs.Root().Sub("lwr"), 64, lwr.DefaultConfig()); err != nil {
		return err
	}
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	var named []ts.NamedTensor
	for _, name := range names {
		v := vars[name]
		named = append(named, ts.NamedTensor{Name: "model." + name, Tensor: &v})
	}
	if err := ts.SaveMultiNew(named, filepath.Join(out, "init.pt")); err != nil {
		return err
	}
	// The data stream, drawn as pkg/train and pkg/data draw it: the
	// epoch's generator gives the order, then per batch every image's
	// crop offsets (dy, dx), then every image's flip.
	labels := make([]int64, n) // the instance sampler does not read them
	f, err := os.Create(filepath.Join(out, "stream.jsonl"))
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for e := range epochs {
		r := rand.New(rand.NewPCG(uint64(seed), uint64(e)))
		order, err := data.InstanceBalanced.Order(labels, int(classes), r)
		if err != nil {
			return err
		}
		line := epoch{Order: order, DY: make([]int, n), DX: make([]int, n), Flip: make([]bool, n)}
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			for i := lo; i < hi; i++ {
				line.DY[i], line.DX[i] = r.IntN(2*pad+1), r.IntN(2*pad+1)
			}
			for i := lo; i < hi; i++ {
				line.Flip[i] = r.IntN(2) == 1
			}
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return f.Close()
}
