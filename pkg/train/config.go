// Package train runs the long-tailed recipes: data, network, balanced loss
// plus λ(t)·R_LWR, SGD with warm-up and step decay, evaluation with
// many/medium/few accuracy, JSON-lines logs, atomic checkpoints and exact
// resumption. cmd/cifar and cmd/imagenet only bind flags to a Config.
package train

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/sugarme/gotch"

	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/dist"
	"github.com/lwr-go/lwr/pkg/imagenet"
	"github.com/lwr-go/lwr/pkg/jpeg"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/losses"
	"github.com/lwr-go/lwr/pkg/lwr"
)

// Config is one training run: its settings (config.Run, plain data that
// config.json holds) and the process group it trains in. Defaults
// (DefaultConfig) are the paper's CIFAR-100-LT recipe except the data set,
// which is Fashion-MNIST-LT so that a run needs no download.
type Config struct {
	config.Run

	// Dist is the process group of a data-parallel run (a worker started
	// by torchrun or --nproc-per-node), nil for a run on its own. Its rank
	// 0 alone writes the run folder; BatchSize is the global batch, split
	// over the ranks.
	Dist *dist.Group `json:"-"`
}

// DefaultConfig is the paper's CIFAR recipe on Fashion-MNIST-LT IF 100:
// ResNet-32, batch 128, SGD (momentum 0.9, weight decay 5e-4), lr 0.1 with 5
// warm-up epochs and ×0.1 at epochs 140 and 170 of 200, Balanced Softmax + LWR
// (θ 0.4, τ 0.1, projection, λ(t) = (1-t/T)²).
func DefaultConfig() Config {
	return Config{Run: config.Run{
		Dataset: "fashion-mnist", ImbalanceFactor: 100, Model: "resnet32",
		Loss: losses.DefaultConfig("balanced-softmax", 200), LWR: true,
		LWRConfig: lwr.DefaultConfig(), LWRSchedule: lwr.Quadratic,
		Epochs: 200, BatchSize: 128, LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4,
		Warmup: 5, Milestones: []int{140, 170}, Gamma: 0.1, Sampler: "instance", Augment: true,
		Seed: 0, EvalEvery: 10, Device: "auto", // Out: cmd names it (RunName)
		LogEvery:    time.Minute, // off a terminal: a line a minute within long epochs, not thousands
		TensorBoard: true,
	}}
}

// ImageNetConfig is the paper's ImageNet-LT recipe: ResNet-50, batch 256,
// SGD (momentum 0.9, weight decay 2e-4), lr 0.1 with 5 warm-up epochs and
// ×0.1 at epochs 60 and 80 of 100, RandomResizedCrop(224) + flip +
// ColorJitter(0.4, 0.4, 0.4), Balanced Softmax + LWR, evaluated on the
// 50,000-image test list.
func ImageNetConfig() Config {
	c := DefaultConfig()
	c.Dataset, c.DataDir, c.Model = "imagenet-lt", "data/imagenet", "resnet50"
	c.ImbalanceFactor = 1 // ImageNet-LT's imbalance is in its list (1,280 → 5)
	c.Loss = losses.DefaultConfig("balanced-softmax", 100)
	c.Epochs, c.BatchSize, c.WeightDecay, c.Milestones = 100, 256, 2e-4, []int{60, 80}
	c.TestSplit, c.Classes, c.ImageSize, c.Jitter, c.Decoder = "test", imagenet.Classes, 224, 0.4, "turbo"
	c.MaxPixels, c.MaxBytes = jpeg.MaxPixels, imagenet.MaxImageBytes
	c.EvalEvery = 5
	return c
}

// Bounds of the loader's settings: each batch in flight holds
// batch × 3 × size² bytes, so unbounded values would let a typo ask for
// terabytes.
const (
	maxWorkers   = 256   // decoding goroutines
	maxPrefetch  = 64    // batches decoded ahead
	maxImageSize = 1024  // crop side in pixels
	maxBatch     = 65536 // images per batch
)

// maxThreads bounds --threads: 4 × the cores. libtorch's OpenMP threads
// spin while they wait, so more threads than cores only slows a run down,
// and a typo of 1000 starts about 1,700 threads that starve the machine.
func maxThreads() int { return 4 * runtime.NumCPU() }

// Validate rejects settings before any work, naming the flag.
func (c Config) Validate() error {
	check := func(ok bool, format string, args ...any) error {
		if ok {
			return nil
		}
		return fmt.Errorf(format, args...)
	}
	// Every float flag is finite: an infinite lr or weight decay passes the
	// range checks below and fails later, far from its flag.
	for _, f := range []struct {
		flag string
		v    float64
	}{
		{"imb-factor", c.ImbalanceFactor}, {"jitter", c.Jitter}, {"la-tau", c.Loss.Tau}, {"ldam-max-margin", c.Loss.MaxMargin},
		{"ldam-scale", c.Loss.Scale}, {"focal-gamma", c.Loss.Gamma}, {"cb-beta", c.Loss.Beta}, {"ib-alpha", c.Loss.IBAlpha},
		{"ib-epsilon", c.Loss.IBEpsilon}, {"lwr-theta", c.LWRConfig.Theta}, {"lwr-tau", c.LWRConfig.Tau}, {"lr", c.LR},
		{"momentum", c.Momentum}, {"wd", c.WeightDecay}, {"lr-gamma", c.Gamma},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("--%s %v: want a finite number", f.flag, f.v)
		}
	}
	_, convAlgErr := libtorch.ParseConvAlgorithm(c.ConvAlgorithm)
	for _, err := range []error{
		check(c.LogEvery >= 0, "--log-every %v: want 0 (none) or more", c.LogEvery),
		check(c.Threads >= 0 && c.Threads <= maxThreads(), "--threads %d: want 0 (every core) to %d (4 × the %d cores)", c.Threads, maxThreads(), runtime.NumCPU()),
		check(c.Dataset == "fashion-mnist" || c.Dataset == "cifar10" || c.Dataset == "cifar100" || c.Dataset == "synthetic" || c.Dataset == "imagenet-lt",
			"--dataset %q: want fashion-mnist, cifar10, cifar100, synthetic or imagenet-lt", c.Dataset),
		check(c.ImbalanceFactor >= 1 && !math.IsInf(c.ImbalanceFactor, 0), "--imb-factor %v: want ≥ 1", c.ImbalanceFactor),
		check(c.Model == "resnet32" || c.Model == "resnet50" || c.Model == "resnext50", "--model %q: want resnet32, resnet50 or resnext50", c.Model),
		check(c.Dataset != "imagenet-lt" || (c.ImageSize >= 32 && c.ImageSize <= maxImageSize), "--image-size %d: want 32..%d", c.ImageSize, maxImageSize),
		check(c.Dataset != "imagenet-lt" || (c.MaxPixels >= 1 && c.MaxPixels <= 1<<32), "--max-image-pixels %d: want 1..%d", c.MaxPixels, int64(1)<<32),
		check(c.Dataset != "imagenet-lt" || (c.MaxBytes >= 1 && c.MaxBytes <= 1<<32), "--max-image-bytes %d: want 1..%d", c.MaxBytes, int64(1)<<32),
		check(!c.SkipCorrupt || c.CheckImages, "--skip-corrupt: needs --check-images (the check finds the images to skip)"),
		check(c.Dataset != "imagenet-lt" || c.Classes >= 2, "--classes %d: want ≥ 2", c.Classes),
		check(c.Dataset != "imagenet-lt" || c.TestSplit == "test" || c.TestSplit == "val", "--test-split %q: want test or val", c.TestSplit),
		check(c.Dataset != "imagenet-lt" || c.Decoder == "turbo" || c.Decoder == "go", "--decoder %q: want turbo or go", c.Decoder),
		check(c.Jitter >= 0 && c.Jitter <= 1, "--jitter %v: want 0 ≤ v ≤ 1", c.Jitter),
		check(c.Workers >= 0 && c.Workers <= maxWorkers, "--workers %d: want 0..%d", c.Workers, maxWorkers),
		check(c.Prefetch >= 0 && c.Prefetch <= maxPrefetch, "--prefetch %d: want 0..%d", c.Prefetch, maxPrefetch),
		check(c.Epochs >= 1, "--epochs %d: want ≥ 1", c.Epochs),
		check(c.BatchSize >= 1 && c.BatchSize <= maxBatch, "--batch-size %d: want 1..%d", c.BatchSize, maxBatch),
		check(c.Dist == nil || c.BatchSize%c.Dist.World == 0, "--batch-size %d: the global batch must divide by the %d workers", c.BatchSize, worldOf(c)),
		check(c.LR > 0, "--lr %v: want > 0", c.LR),
		check(c.Momentum >= 0 && c.Momentum < 1, "--momentum %v: want 0 ≤ μ < 1", c.Momentum),
		check(c.WeightDecay >= 0, "--wd %v: want ≥ 0", c.WeightDecay),
		check(c.Warmup >= 0, "--warmup %d: want ≥ 0", c.Warmup),
		check(c.Gamma > 0 && c.Gamma <= 1, "--lr-gamma %v: want 0 < γ ≤ 1", c.Gamma),
		check(sort.IntsAreSorted(c.Milestones), "--milestones %v: want increasing epochs", c.Milestones),
		check(len(c.Milestones) == 0 || (c.Milestones[0] >= 0 && c.Milestones[len(c.Milestones)-1] < c.Epochs),
			"--milestones %v: want epochs in 0..%d (--epochs %d); a milestone at or after the end never applies", c.Milestones, c.Epochs-1, c.Epochs),
		check(c.Warmup == 0 || c.Warmup < c.Epochs, "--warmup %d: want fewer than --epochs %d (or 0)", c.Warmup, c.Epochs),
		check(!usesDRW(c.Loss.Name) || c.Loss.DRWEpoch < c.Epochs,
			"--drw-epoch %d: want below --epochs %d, or --loss %s never re-weights", c.Loss.DRWEpoch, c.Epochs, c.Loss.Name),
		check(!usesIB(c.Loss.Name) || c.Loss.IBEpoch < c.Epochs,
			"--ib-epoch %d: want below --epochs %d, or --loss %s never switches to IB", c.Loss.IBEpoch, c.Epochs, c.Loss.Name),
		check(c.Sampler == "instance" || c.Sampler == "class" || c.Sampler == "sqrt", "--sampler %q: want instance, class or sqrt", c.Sampler),
		check(c.MemoryFormat == "" || c.MemoryFormat == "auto" || c.MemoryFormat == libtorch.ChannelsLast || c.MemoryFormat == libtorch.Contiguous || c.MemoryFormat == libtorch.Blocked,
			"--memory-format %q: want auto, channels-last, contiguous or blocked", c.MemoryFormat),
		check(c.MemoryFormat != libtorch.Blocked || c.Model == "resnet32" || c.Model == "resnet50",
			"--memory-format blocked: ResNet-32 and ResNet-50 only (--model %s runs channels-last)", c.Model),
		check(c.MemoryFormat != libtorch.Blocked || c.FusedBN != FusedOff,
			"--memory-format blocked runs lwr's batch-norm kernel: not with --fused-bn off"),
		check(c.MemoryFormat != libtorch.Blocked || !c.SyncBN,
			"--memory-format blocked: not with --sync-bn (synchronised batch norms are libtorch's)"),
		check(c.MemoryFormat != libtorch.Blocked || !strings.HasPrefix(c.Device, "cuda"),
			"--memory-format blocked is for CPUs: not with --device %s", c.Device),
		check(c.MemoryFormat != libtorch.Blocked || libtorch.FusedAvailable(),
			"--memory-format blocked: %v", libtorch.ErrNoBlocked),
		check(c.FusedEval == "" || c.FusedEval == FusedAuto || c.FusedEval == FusedOn || c.FusedEval == FusedOff,
			"--fused-eval %q: want auto, on or off", c.FusedEval),
		check(c.FusedBN == "" || c.FusedBN == FusedAuto || c.FusedBN == FusedOff,
			"--fused-bn %q: want auto or off", c.FusedBN),
		check(convAlgErr == nil, "--conv-algorithm %q: want auto, direct or winograd", c.ConvAlgorithm),
		check(c.ConvAlgorithm != string(libtorch.ConvWinograd) || c.MemoryFormat == "" || c.MemoryFormat == "auto" || c.MemoryFormat == libtorch.Blocked,
			"--conv-algorithm winograd: for blocked activations, not with --memory-format %s", c.MemoryFormat),
		check(c.EvalEvery >= 1, "--eval-every %d: want ≥ 1", c.EvalEvery),
	} {
		if err != nil {
			return err
		}
	}
	if c.LWR {
		if err := c.LWRConfig.Validate(); err != nil {
			msg := err.Error()
			for _, name := range []string{"theta", "tau", "reduction"} {
				msg = strings.Replace(msg, "lwr "+name+" = ", "--lwr-"+name+" ", 1)
				msg = strings.Replace(msg, "lwr "+name+" ", "--lwr-"+name+" ", 1)
			}
			return errors.New(msg)
		}
		if _, err := c.LWRSchedule.Weight(0, c.Epochs); err != nil {
			return fmt.Errorf("--lwr-schedule: %v", err)
		}
	}
	if _, err := losses.New(c.Loss, []int64{2, 1}); err != nil {
		return fmt.Errorf("--loss: %v", err)
	}
	switch {
	case c.Stage2 != "" && c.Stage2 != "crt" && c.Stage2 != "lws":
		return fmt.Errorf("--stage2 %q: want crt or lws", c.Stage2)
	case c.Stage2 != "" && c.InitFrom == "":
		return fmt.Errorf("--stage2 %s: needs --init-from, the network of stage one", c.Stage2)
	case c.Stage2 == "lws" && c.LWR:
		return errors.New("--stage2 lws: LWS keeps the classifier rows LWR acts on frozen; use --lwr=false, or --stage2 crt")
	}
	if c.InitFrom != "" {
		if st, err := os.Stat(c.InitFrom); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("--init-from %s: not a readable file", c.InitFrom)
		}
	}
	if c.Out == "" {
		return errors.New("--out: want a folder")
	}
	return nil
}

func usesDRW(loss string) bool { return loss == "ce-drw" || loss == "ldam-drw" || loss == "focal-drw" }
func usesIB(loss string) bool  { return loss == "ib" || loss == "ib-focal" }

// FollowEpochs fits c's epoch-valued settings to its --epochs
// (config.FollowEpochs).
func FollowEpochs(c *Config, from int, given func(flag string) bool) {
	config.FollowEpochs(&c.Run, from, given)
}

// LearningRate is the lr of an epoch (counting from 0): linear warm-up,
// lr·(e+1)/warmup for e < warmup as LDAM-DRW, then lr·γ^k after k milestones.
func LearningRate(c Config, epoch int) float64 {
	if epoch < c.Warmup {
		return c.LR * float64(epoch+1) / float64(c.Warmup)
	}
	lr := c.LR
	for _, m := range c.Milestones {
		if epoch >= m {
			lr *= c.Gamma
		}
	}
	return lr
}

// memoryFormat is the memory format c's run uses on dev: as asked, or for
// auto contiguous on GPUs and on CPUs blocked for ResNet-32 and ResNet-50
// where it applies and oneDNN computes in channel blocks (8 with AVX2, 16
// with AVX-512: libtorch.PreferredBlock), else channels-last. Blocked
// measured faster on both (BENCHMARKS.md).
func (c Config) memoryFormat(dev gotch.Device) string {
	switch c.MemoryFormat {
	case libtorch.ChannelsLast, libtorch.Contiguous, libtorch.Blocked:
		return c.MemoryFormat
	}
	if dev.IsCuda() {
		return libtorch.Contiguous
	}
	if (c.Model == "resnet32" || c.Model == "resnet50") && c.FusedBN != FusedOff && !(c.SyncBN && c.Dist != nil && c.Dist.Distributed()) &&
		gotch.DefaultDType == gotch.Float && libtorch.ValidBlock(libtorch.PreferredBlock()) {
		return libtorch.Blocked
	}
	return libtorch.ChannelsLast
}

// layout is the layout c's training activations run in on dev
// (config.Provenance.Layout): memoryFormat's, with the block and the
// convolution algorithm where blocked.
func (c Config) layout(dev gotch.Device) string {
	f := c.memoryFormat(dev)
	if f != libtorch.Blocked {
		return f
	}
	alg, _ := libtorch.ParseConvAlgorithm(c.ConvAlgorithm) // "" is auto; Validate refused the rest
	return fmt.Sprintf("%s%d, %s convolutions", f, libtorch.TrainingBlock(), alg)
}

// cpuEvalBatch is the evaluation batch on a CPU: small batches keep the
// activations in cache and are faster per image (ResNet-32 forward in
// eval mode at 28 px, 2 threads, channels-last: 0.30 ms an image at batch
// 64, 0.33 at 128, 0.36 at 256, 0.47 at 1,024; `bench/resnet --mode eval`).
const cpuEvalBatch = 64

// evalBatch is the batch size of evaluation on dev: cpuEvalBatch on a CPU,
// twice the training batch on a GPU (no gradients to keep: room for more).
func (c Config) evalBatch(dev gotch.Device) int {
	if dev.IsCuda() {
		return 2 * c.BatchSize
	}
	return cpuEvalBatch
}

// worldOf is the number of workers of c's run (1 on its own).
func worldOf(c Config) int {
	if c.Dist == nil {
		return 1
	}
	return c.Dist.World
}

// ShortSchedule shrinks c's recipe to e epochs (config.ShortSchedule).
func ShortSchedule(c *Config, e int) { config.ShortSchedule(&c.Run, e) }
