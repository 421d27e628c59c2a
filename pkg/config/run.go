// Package config holds what describes a training run and its result as
// plain data: the settings of a run (Run) with those of its loss and of
// LWR, the schedules that are pure functions of them, and the summary a
// finished run writes. It imports only the standard library, so that
// presets, tables and tools that read run folders build without cgo.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"time"
)

// Run is one training run's settings, as config.json holds them. Defaults
// are pkg/train's (train.DefaultConfig): the paper's CIFAR-100-LT recipe
// on Fashion-MNIST-LT.
type Run struct {
	Dataset         string  `json:"dataset"`          // fashion-mnist, cifar10, cifar100, synthetic, imagenet-lt
	DataDir         string  `json:"data_dir"`         // folder of the data set's files (ImageNet-LT: ILSVRC2012's, holding train/ and val/)
	ImbalanceFactor float64 `json:"imbalance_factor"` // n_max / n_min of the training subset (100)
	SubsetSeed      uint32  `json:"subset_seed"`      // NumPy seed of the subset draw (0, as the reference code)
	Model           string  `json:"model"`            // resnet32 (CIFAR), resnet50, resnext50 (ImageNet)

	// ImageNet-LT only.
	ListDir     string  `json:"list_dir,omitempty"`         // folder of ImageNet_LT_{train,val,test}.txt (default: DataDir)
	TestSplit   string  `json:"test_split,omitempty"`       // the list evaluated: test (50,000 images) or val (20,000)
	Classes     int     `json:"classes,omitempty"`          // labels in the lists are below it (1000)
	SkipMissing bool    `json:"skip_missing,omitempty"`     // drop listed images that are not on disk, instead of stopping
	ImageSize   int     `json:"image_size,omitempty"`       // crop side in pixels (224); the test resize is 256/224 of it
	Jitter      float64 `json:"jitter,omitempty"`           // ColorJitter brightness = contrast = saturation (0.4); 0: off
	Decoder     string  `json:"decoder,omitempty"`          // turbo (libjpeg-turbo) or go
	Workers     int     `json:"workers,omitempty"`          // JPEG decoding goroutines (0: one per core)
	Prefetch    int     `json:"prefetch,omitempty"`         // batches decoded ahead (0: 2)
	MaxPixels   int64   `json:"max_image_pixels,omitempty"` // largest image accepted, width × height (jpeg.MaxPixels)
	MaxBytes    int64   `json:"max_image_bytes,omitempty"`  // largest image file accepted (imagenet.MaxImageBytes)
	CheckImages bool    `json:"check_images,omitempty"`     // read every listed image's header before training
	SkipCorrupt bool    `json:"skip_corrupt,omitempty"`     // with CheckImages: train without the images that fail it, counted

	Loss        Loss     `json:"loss"`
	LWR         bool     `json:"lwr"`
	LWRConfig   LWR      `json:"lwr_config"`
	LWRSchedule Schedule `json:"lwr_schedule"`

	Epochs      int     `json:"epochs"`       // 200 (CIFAR recipe)
	BatchSize   int     `json:"batch_size"`   // 128
	LR          float64 `json:"lr"`           // 0.1
	Momentum    float64 `json:"momentum"`     // 0.9
	WeightDecay float64 `json:"weight_decay"` // 5e-4 (CIFAR), 2e-4 (ImageNet)
	Nesterov    bool    `json:"nesterov"`
	Warmup      int     `json:"warmup"`     // linear warm-up epochs (5, as LDAM-DRW)
	Milestones  []int   `json:"milestones"` // epochs where the lr is multiplied by Gamma (140, 170)
	Gamma       float64 `json:"gamma"`      // 0.1
	Sampler     string  `json:"sampler"`    // instance, class, sqrt
	Augment     bool    `json:"augment"`    // random crop (pad 4) + flip
	// SyncBN normalises each batch norm layer in training with the
	// statistics of the whole global batch of a data-parallel run
	// (PyTorch's SyncBatchNorm) instead of each worker's share; nothing
	// changes for a run on its own.
	SyncBN bool `json:"sync_bn,omitempty"`

	InitFrom  string `json:"init_from,omitempty"` // safetensors or torch.save .pth file (PyTorch names) whose weights the network starts from
	Stage2    string `json:"stage2,omitempty"`    // crt or lws: decoupled classifier retraining of InitFrom's network (Kang et al. 2020)
	Seed      int64  `json:"seed"`
	EvalEvery int    `json:"eval_every"` // evaluate every N epochs (and after the last)
	Device    string `json:"device"`     // cpu, cuda, cuda:N, auto
	Threads   int    `json:"threads"`    // libtorch CPU threads; 0: all cores
	// MemoryFormat of images and convolution weights: channels-last,
	// contiguous (NCHW), blocked (channels-last, and ResNet-32's
	// activations in training in oneDNN's channel blocks), or "" / auto:
	// the fastest for the device and model.
	MemoryFormat string `json:"memory_format,omitempty"`
	// FusedEval folds batch norms into oneDNN convolutions for evaluation
	// (and stage two's frozen backbone) on CPUs: auto (or ""), on or off
	// (FusedAuto, FusedOn, FusedOff).
	FusedEval string `json:"fused_eval,omitempty"`
	// FusedBN runs each batch norm, residual add and ReLU of training as
	// lwr's one kernel where it applies (float32, channels-last, CPU):
	// auto (or "") or off (libtorch's separate ops, as PyTorch runs them).
	FusedBN string `json:"fused_bn,omitempty"`
	// ConvAlgorithm computes the convolutions of blocked activations:
	// auto (or ""), direct or winograd (libtorch.ConvAlgorithm).
	ConvAlgorithm string `json:"conv_algorithm,omitempty"`

	Out    string `json:"out"` // output folder
	Resume bool   `json:"-"`   // continue from Out's checkpoint
	Force  bool   `json:"-"`   // move a run already in Out aside (to Out.old-TIME) and start anew
	Quiet  bool   `json:"-"`   // nothing on the console (train.log is still written)
	// LogEvery is how often a plain progress line is written within an
	// epoch when stderr is not a terminal, and to train.log (0: none).
	LogEvery time.Duration `json:"-"`
	// TensorBoard: write the run's TensorBoard event file (events.out.tfevents.*).
	TensorBoard bool `json:"-"`

	// Provenance is where the run came from (set when it starts; nil in
	// the settings a run is given).
	Provenance *Provenance `json:"provenance,omitempty"`
}

// FollowEpochs fits the epoch-valued settings of a recipe written for
// `from` epochs to c.Epochs, so that --epochs alone gives the same
// schedule in a shorter or longer run: milestones and the DRW and IB
// switch epochs scale by c.Epochs/from (a milestone that lands on epoch 0
// or at the end is dropped); the warm-up stays, but at most half the run.
// A setting the user gave (given(flag) true) is left as given; Validate
// then rejects one that does not fit.
func FollowEpochs(c *Run, from int, given func(flag string) bool) {
	if from <= 0 || c.Epochs == from {
		return
	}
	scale := func(e int) int { return e * c.Epochs / from }
	if !given("milestones") {
		var ms []int
		for _, m := range c.Milestones {
			if m2 := scale(m); m2 > 0 && m2 < c.Epochs {
				ms = append(ms, m2)
			}
		}
		c.Milestones = ms
	}
	if !given("drw-epoch") {
		c.Loss.DRWEpoch = scale(c.Loss.DRWEpoch)
	}
	if !given("ib-epoch") {
		c.Loss.IBEpoch = scale(c.Loss.IBEpoch)
	}
	if !given("warmup") {
		c.Warmup = min(c.Warmup, c.Epochs/2)
	}
}

// Hash identifies the settings that determine a run's result; a
// checkpoint only resumes a run with the same hash.
func (c Run) Hash() string {
	b, _ := json.Marshal(c.resultRelevant())
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// resultRelevant is c without the settings that do not change the result.
func (c Run) resultRelevant() Run {
	c.Out, c.Device, c.Threads, c.EvalEvery, c.Workers, c.Prefetch = "", "", 0, 0, 0, 0
	c.MemoryFormat, c.FusedEval, c.FusedBN, c.ConvAlgorithm = "", "", "", ""
	c.MaxPixels, c.MaxBytes, c.CheckImages = 0, 0, false
	c.Provenance = nil
	return c
}

// Diff lists the result-relevant settings where c and other differ, as
// "name: a → b" lines.
func (c Run) Diff(other Run) []string {
	a, b := map[string]any{}, map[string]any{}
	ja, _ := json.Marshal(c.resultRelevant())
	jb, _ := json.Marshal(other.resultRelevant())
	json.Unmarshal(ja, &a)
	json.Unmarshal(jb, &b)
	var out []string
	var walk func(prefix string, x, y map[string]any)
	walk = func(prefix string, x, y map[string]any) {
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			xm, ok1 := x[k].(map[string]any)
			ym, ok2 := y[k].(map[string]any)
			if ok1 && ok2 {
				walk(prefix+k+".", xm, ym)
				continue
			}
			if !reflect.DeepEqual(x[k], y[k]) {
				out = append(out, fmt.Sprintf("%s%s: %v → %v", prefix, k, x[k], y[k]))
			}
		}
	}
	walk("", a, b)
	return out
}

// ShortSchedule shrinks the recipe's epochs to e, keeping the schedule's
// shape: milestones at 70% and 85%, DRW at 80% and IB at 50%, warm-up 5%
// but 2 to 5 epochs. One warm-up epoch would be none (LDAM-DRW's epoch-wise
// warm-up runs epoch 0 at lr·1/warmup): at lr 0.1 from the first step some
// initialisations blow up in the first epoch and never recover, which made
// short runs' results depend more on the seed than on the loss
// (BENCHMARKS.md, "short runs").
func ShortSchedule(c *Run, e int) {
	c.Epochs = e
	c.Milestones = []int{e * 70 / 100, e * 85 / 100}
	c.Warmup = min(5, max(2, e*5/100), max(e-1, 0)) // and less than the run
	c.Loss.DRWEpoch = e * 4 / 5
	c.Loss.IBEpoch = e / 2
}
