package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/train"
)

// BindFlags binds every setting of a CIFAR-style run (cmd/cifar) to a
// GNU-style flag of fs, with c's current values as defaults.
func BindFlags(fs *pflag.FlagSet, c *train.Config) {
	fs.StringVar(&c.Dataset, "dataset", c.Dataset, "data set: fashion-mnist (offline, Debian's dataset-fashion-mnist), cifar10, cifar100, synthetic")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "folder of the data set's files (default: /usr/share/datasets/fashion-mnist or $FASHION_MNIST_DIR; ./data for CIFAR)")
	fs.Float64Var(&c.ImbalanceFactor, "imb-factor", c.ImbalanceFactor, "imbalance factor n_max/n_min of the long-tailed training subset (10, 50, 100)")
	fs.Uint32Var(&c.SubsetSeed, "subset-seed", c.SubsetSeed, "NumPy seed of the subset draw; 0 gives the reference code's subset")
	fs.StringVar(&c.Model, "model", c.Model, "network: resnet32")
	fs.BoolVar(&c.Augment, "augment", c.Augment, "random crop (4-pixel zero padding) and horizontal flip")
	bindCommon(fs, c)
}

// BindImageNetFlags binds every setting of an ImageNet-LT run
// (cmd/imagenet) to a GNU-style flag of fs, with c's values as defaults.
func BindImageNetFlags(fs *pflag.FlagSet, c *train.Config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "ILSVRC2012 folder holding train/ and val/ (the paths of the split files are relative to it)")
	fs.StringVar(&c.ListDir, "list-dir", c.ListDir, "folder of ImageNet_LT_{train,val,test}.txt (default: --data-dir); scripts/download_imagenet_lt.sh fetches them")
	fs.StringVar(&c.TestSplit, "test-split", c.TestSplit, "list to evaluate: test (50,000 images, the paper's numbers) or val (20,000)")
	fs.IntVar(&c.Classes, "classes", c.Classes, "number of classes; labels in the lists must be below it (1000; fewer for a subset of ImageNet)")
	fs.BoolVar(&c.SkipMissing, "skip-missing", c.SkipMissing, "train and test without listed images that are not on disk (counted), instead of stopping")
	fs.StringVar(&c.Model, "model", c.Model, "network: resnet50 or resnext50 (32x4d)")
	fs.IntVar(&c.ImageSize, "image-size", c.ImageSize, "training crop side in pixels; the test transform resizes to 256/224 of it, then center-crops")
	fs.BoolVar(&c.Augment, "augment", c.Augment, "RandomResizedCrop, horizontal flip and --jitter (else the test transform)")
	fs.Float64Var(&c.Jitter, "jitter", c.Jitter, "ColorJitter brightness = contrast = saturation strength (0: none)")
	fs.StringVar(&c.Decoder, "decoder", c.Decoder, "JPEG decoder: turbo (libjpeg-turbo, shrink-on-load) or go (image/jpeg, slower)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "JPEG decoding goroutines (0: one per core)")
	fs.IntVar(&c.Prefetch, "prefetch", c.Prefetch, "batches decoded ahead of training (0: 2)")
	fs.Int64Var(&c.MaxPixels, "max-image-pixels", c.MaxPixels, "refuse an image whose header claims more pixels (width × height) than this")
	fs.Int64Var(&c.MaxBytes, "max-image-bytes", c.MaxBytes, "refuse an image file larger than this many bytes")
	fs.BoolVar(&c.CheckImages, "check-images", c.CheckImages, "before training, read and decode every listed image in parallel (JPEGs at 1/8 scale: format, size limits, truncated or corrupt data) and stop at the first bad one, naming its list line")
	fs.BoolVar(&c.SkipCorrupt, "skip-corrupt", c.SkipCorrupt, "with --check-images: train and test without the images that fail the check (counted) instead of stopping")
	bindCommon(fs, c)
}

// bindCommon binds the settings both commands share.
func bindCommon(fs *pflag.FlagSet, c *train.Config) {
	fs.StringVar(&c.Loss.Name, "loss", c.Loss.Name, "balanced loss: ce, balanced-softmax (bs), logit-adjustment (la), cb-ce (cb), ce-drw, ldam, ldam-drw, focal, focal-drw, ib, ib-focal")
	fs.Float64Var(&c.Loss.Tau, "la-tau", c.Loss.Tau, "logit adjustment τ")
	fs.Float64Var(&c.Loss.MaxMargin, "ldam-max-margin", c.Loss.MaxMargin, "LDAM largest margin")
	fs.Float64Var(&c.Loss.Scale, "ldam-scale", c.Loss.Scale, "LDAM logit scale s")
	fs.Float64Var(&c.Loss.Gamma, "focal-gamma", c.Loss.Gamma, "focal γ")
	fs.Float64Var(&c.Loss.Beta, "cb-beta", c.Loss.Beta, "class-balanced β of the effective number")
	fs.IntVar(&c.Loss.DRWEpoch, "drw-epoch", c.Loss.DRWEpoch, "epoch from which DRW losses re-weight (counting from 0)")
	fs.Float64Var(&c.Loss.IBAlpha, "ib-alpha", c.Loss.IBAlpha, "IB loss α")
	fs.IntVar(&c.Loss.IBEpoch, "ib-epoch", c.Loss.IBEpoch, "epoch from which IB replaces CE")

	fs.BoolVar(&c.LWR, "lwr", c.LWR, "add Logit Weight Repulsion λ(t)·R to the loss (--lwr=false to switch off)")
	fs.Float64Var(&c.LWRConfig.Theta, "lwr-theta", c.LWRConfig.Theta, "LWR threshold θ on the cosine similarity, in [-1, 1]")
	fs.Float64Var(&c.LWRConfig.Tau, "lwr-tau", c.LWRConfig.Tau, "LWR temperature τ > 0")
	fs.BoolVar(&c.LWRConfig.Projection, "lwr-proj", c.LWRConfig.Projection, "pass classifier rows through the trainable projection MLP")
	fs.Var(newStringValue((*string)(&c.LWRSchedule)), "lwr-schedule", "LWR weight over epochs: quadratic (1-t/T)² or constant")
	fs.Var(newStringValue((*string)(&c.LWRConfig.Reduction)), "lwr-reduction", "sum over classes (the paper's Eq. 5) or mean")

	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "training epochs; the milestones, --drw-epoch and --ib-epoch scale with it unless given")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "batch size")
	fs.Float64Var(&c.LR, "lr", c.LR, "peak learning rate")
	fs.Float64Var(&c.Momentum, "momentum", c.Momentum, "SGD momentum")
	fs.Float64Var(&c.WeightDecay, "wd", c.WeightDecay, "weight decay (5e-4 CIFAR, 2e-4 ImageNet)")
	fs.BoolVar(&c.Nesterov, "nesterov", c.Nesterov, "Nesterov momentum")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "linear warm-up epochs")
	fs.Var(newIntsValue(&c.Milestones), "milestones", "epochs at which the lr is multiplied by --lr-gamma, comma-separated")
	fs.Float64Var(&c.Gamma, "lr-gamma", c.Gamma, "lr decay factor at each milestone")
	fs.StringVar(&c.Sampler, "sampler", c.Sampler, "instance (each image once), class (class-balanced), sqrt (square-root)")

	fs.BoolVar(&c.SyncBN, "sync-bn", c.SyncBN, "data-parallel runs: batch norm uses the statistics of the whole global batch (SyncBatchNorm), not each worker's share")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of initialisation, order and augmentation")
	fs.StringVar(&c.Stage2, "stage2", c.Stage2, "decoupled classifier retraining of the --init-from network (backbone frozen): crt (classifier re-trained from scratch) or lws (per-class logit scales learned); class-balanced sampling unless --sampler")
	fs.StringVar(&c.InitFrom, "init-from", c.InitFrom, "start from the weights of a .safetensors file in PyTorch's names (--export's) or a PyTorch .pth saved by torch.save (a state dict such as torchvision's, or a checkpoint holding one under \"model\" or \"state_dict\"); every key and shape must match")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "evaluate on the test set every N epochs and after the last")
	fs.StringVar(&c.Device, "device", c.Device, "cpu, cuda, cuda:N or auto (CUDA when available)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "libtorch CPU threads (0: all cores)")
	fs.StringVar(&c.MemoryFormat, "memory-format", "auto", "layout of images and convolution weights: channels-last (NHWC, oneDNN's fast CPU convolutions), contiguous (NCHW), blocked (channels-last, and ResNet-32's or ResNet-50's activations in training in oneDNN's channel blocks, 8 or 16 as oneDNN computes on this CPU: a ResNet-32 step takes ~9% less time on AVX2 CPUs, ~20% with AVX-512 and its Winograd convolutions (--conv-algorithm); ResNet-50's 1.1-1.5×), or auto (blocked for ResNet-32 and ResNet-50 where oneDNN computes in channel blocks, else channels-last on CPUs; contiguous on GPUs)")
	fs.StringVar(&c.ConvAlgorithm, "conv-algorithm", "auto", "convolutions of blocked activations (--memory-format blocked, or auto where it picks blocked): direct (oneDNN's direct convolutions, as libtorch's), winograd (Winograd convolutions for every 3×3 stride-1 one: oneDNN's F(4×4,3×3) in 16-channel blocks on AVX-512 CPUs, which rounds up to ~3× more; lwr's F(2×2,3×3) in 8-channel blocks on AVX2 CPUs; both multiply less), or auto (Winograd where it measured faster: the 3×3 ones of 32 channels or more in 16-channel blocks, of 16 to 256 in 8-channel blocks; a ResNet-32 step takes ~20% less time on AVX-512, ~15-20% on AVX2; else direct)")
	fs.StringVar(&c.FusedEval, "fused-eval", "auto", "evaluation, and the frozen backbone of --stage2, with each batch norm folded into its convolution, run by oneDNN with the ReLU and residual add (CPU, float32; the same values up to rounding; ResNet-32 ~1.2×, ResNet-50 ~1.5× faster): auto (where available), on (or fail saying why) or off (libtorch's kernels)")
	fs.StringVar(&c.FusedBN, "fused-bn", "auto", "training: each batch norm, residual add and ReLU as one kernel of lwr's (CPU, channels-last, float32; the same values up to rounding; a ResNet-32 step ~4% faster): auto (where it applies) or off (libtorch's separate ops, as PyTorch runs them)")
	fs.StringVar(&c.Out, "out", c.Out, "output folder: config.json, log.jsonl, checkpoint.pt, summary.json (default runs/NAME, NAME from the data set, loss and LWR settings; with --preset, each run in OUT/NAME)")
	fs.BoolVar(&c.Resume, "resume", c.Resume, "continue the run in --out from its checkpoint (same settings required)")
	fs.BoolVar(&c.Force, "force", c.Force, "start anew in an --out that holds another run, after moving that run aside to OUT.old-TIME (nothing is deleted)")
	fs.BoolVar(&c.Quiet, "quiet", c.Quiet, "nothing on the console while training (train.log in --out is still written)")
	fs.BoolVar(&c.TensorBoard, "tensorboard", c.TensorBoard, "write TensorBoard event files in --out (scalars of log.jsonl, the classifier's row norm and cosine histograms, the figures, the config): tensorboard --logdir runs")
	fs.DurationVar(&c.LogEvery, "log-every", c.LogEvery, "when stderr is not a terminal (a log file, a pipe, a batch job), and in train.log: a progress line at most this often within an epoch (0: only the epoch and evaluation lines)")
}

// stringValue is a string flag over a named string type.
type stringValue struct{ p *string }

func newStringValue(p *string) *stringValue { return &stringValue{p} }
func (v *stringValue) String() string       { return *v.p }
func (v *stringValue) Set(s string) error   { *v.p = s; return nil }
func (v *stringValue) Type() string         { return "string" }

// intsValue is a comma-separated list of ints.
type intsValue struct{ p *[]int }

func newIntsValue(p *[]int) *intsValue { return &intsValue{p} }

func (v *intsValue) String() string {
	parts := make([]string, len(*v.p))
	for i, n := range *v.p {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (v *intsValue) Set(s string) error {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return fmt.Errorf("%q is not an epoch number", part)
		}
		out = append(out, n)
	}
	*v.p = out
	return nil
}

func (v *intsValue) Type() string { return "ints" }
