// Command resnet benchmarks ResNet-32 on the CPU or a GPU: forward+backward
// time per batch (-mode fwdbwd), and resident memory over many SGD training
// steps with Balanced Softmax + LWR (-mode train), to show that no tensor
// leaks. bench/torch_resnet32.py is the same in PyTorch; bench/run.sh runs
// both side by side.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/losses"
	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/optim"
	"github.com/lwr-go/lwr/pkg/resnet"
)

func main() {
	mode := pflag.String("mode", "fwdbwd", "fwdbwd: time forward+backward; step: time a whole training step (BS + LWR, SGD); eval: time evaluation per image; lwr: time LWR's R alone (forward + backward, --classes × --dim); train: resident memory over SGD steps; conv: time each 3×3 stride-1 convolution shape of --model alone (forward + both gradients, blocked in oneDNN's block), with direct and Winograd convolutions (libtorch.ConvAlgorithm); blocked: whether --memory-format auto trains ResNet-32 blocked here; block: oneDNN's preferred channel block here (0: none)")
	batch := pflag.Int64("batch", 128, "batch size")
	iters := pflag.Int("iters", 20, "timed iterations (fwdbwd) or training steps (train)")
	warmup := pflag.Int("warmup", 3, "untimed iterations first")
	classes := pflag.Int64("classes", 100, "classes")
	threads := pflag.Int("threads", 0, "libtorch intra-op threads (0: libtorch's default)")
	device := pflag.String("device", "cpu", "cpu, cuda or auto")
	format := pflag.String("memory-format", "contiguous", "step, eval: contiguous, channels-last, or (step, ResNet-32) blocked: channels-last weights and input, activations in oneDNN's blocks (resnet.Options.Blocked)")
	side := pflag.Int64("side", 32, "step, eval: image side in pixels (32 for ResNet-32)")
	model := pflag.String("model", "resnet32", "step, eval: resnet32 or resnet50")
	dim := pflag.Int64("dim", 64, "lwr: classifier width d (64 for ResNet-32, 2048 for ResNet-50)")
	fused := pflag.Bool("fused", false, "eval: batch norms folded into oneDNN convolutions with the ReLUs and residual adds (resnet.Fold), as the trainer evaluates on CPUs")
	pflag.Int64Var(&block, "block", 0, "step, blocked: channels a block, 8 or 16 (0: oneDNN's choice on this CPU, libtorch.TrainingBlock)")
	pflag.StringVar((*string)(&convAlg), "conv-algorithm", "auto", "step, blocked: auto, direct or winograd (resnet.Options.ConvAlgorithm)")
	pflag.BoolVar(&libtorchBN, "libtorch-bn", false, "step: each batch norm, residual add and ReLU as libtorch's separate ops (resnet.Options.LibtorchBatchNorm), as PyTorch runs them, not lwr's kernel")
	cpuprofile := pflag.String("cpuprofile", "", "write a Go CPU profile here (cgo calls show as runtime.cgocall)")
	pflag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "resnet:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	err := libtorch.OnThread(func() error {
		dev, err := libtorch.ParseDevice(*device)
		if err != nil {
			return err
		}
		libtorch.SetNumThreads(*threads)
		libtorch.ManualSeed(0)
		switch *mode {
		case "fwdbwd":
			return fwdbwd(dev, *batch, *classes, *iters, *warmup)
		case "train":
			return train(dev, *batch, *classes, *iters, *warmup)
		case "step":
			return step(dev, *model, *batch, *side, *classes, *iters, *warmup, *format)
		case "eval":
			return eval(dev, *model, *batch, *side, *classes, *iters, *warmup, *format, *fused)
		case "lwr":
			return regularizer(dev, *classes, *dim, *iters, *warmup)
		case "conv":
			return convs(*model, *batch, *iters, *warmup)
		case "blocked":
			// Whether the trainer's --memory-format auto trains ResNet-32
			// (and ResNet-50) blocked on this CPU: oneDNN computes in blocks.
			fmt.Println(libtorch.FusedAvailable() && libtorch.ValidBlock(libtorch.PreferredBlock()))
			return nil
		case "block":
			// oneDNN's preferred channel block here (0: none).
			fmt.Println(libtorch.PreferredBlock())
			return nil
		}
		return fmt.Errorf("--mode %q: want fwdbwd, step, eval, lwr, conv, blocked, block or train", *mode)
	})
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "resnet:", err)
		os.Exit(1)
	}
}

func fwdbwd(dev gotch.Device, batch, classes int64, iters, warmup int) error {
	vs := nn.NewVarStore(dev)
	net, err := resnet.ResNet32(vs.Root(), resnet.Options{Classes: classes, InChannels: 3})
	if err != nil {
		return err
	}
	x := ts.MustRandn([]int64{batch, 3, 32, 32}, gotch.Float, dev)
	y := ts.MustRandint(classes, []int64{batch}, gotch.Int64, dev)
	times := timed(warmup, iters, func() {
		logits, feat := net.ForwardT(x, true)
		loss := logits.MustCrossEntropyLoss(y, libtorch.None, 1, -100, 0, false)
		loss.MustBackward()
		loss.Float64Values() // host sync
		loss.MustDrop()
		logits.MustDrop()
		feat.MustDrop()
		for _, p := range vs.TrainableVariables() {
			g := p.MustGrad(false)
			g.MustZero_()
			g.MustDrop()
		}
	})
	fmt.Printf("go fwdbwd resnet32 batch=%d threads=%d device=%s: median %.1f ms, min %.1f ms over %d iterations (live tensors %d, made %d)\n",
		batch, libtorch.NumThreads(), dev.Name, 1000*times[len(times)/2], 1000*times[0], len(times), len(ts.ExistingTensors), ts.TensorCount)
	return nil
}

func train(dev gotch.Device, batch, classes int64, steps, warmup int) error {
	vs := nn.NewVarStore(dev)
	net, err := resnet.ResNet32(vs.Root(), resnet.Options{Classes: classes, InChannels: 3})
	if err != nil {
		return err
	}
	reg, loss, err := objective(vs, net, classes)
	if err != nil {
		return err
	}
	opt, err := optim.NewSGD(vs.TrainableVariables(), 0.1, 0.9, 5e-4, false)
	if err != nil {
		return err
	}
	x := ts.MustRandn([]int64{batch, 3, 32, 32}, gotch.Float, dev)
	y := ts.MustRandint(classes, []int64{batch}, gotch.Int64, dev)
	// RSS is sampled every 10 steps; a window is a tenth of the run. Go's
	// heap (gotch's per-tensor ballast) makes single samples jitter by a few
	// percent, so windows are compared by their mean, and the live tensor
	// count (gotch's registry) shows leaks directly.
	window := steps / 10
	var samples []float64
	var firstMean float64
	start := time.Now()
	for i := 1; i <= steps; i++ {
		sgdStep(net, loss, reg, opt, x, y)
		if i > warmup && i%10 == 0 {
			samples = append(samples, float64(rssKB())/1024)
		}
		if i > warmup && (i-warmup)%window == 0 {
			var mean float64
			for _, v := range samples {
				mean += v
			}
			mean /= float64(len(samples))
			samples = samples[:0]
			if firstMean == 0 {
				firstMean = mean
			}
			fmt.Printf("steps %5d-%5d  mean rss %7.1f MiB  vs first window %+.2f%%  live tensors %d  (%.1f steps/s)\n",
				i-window+1, i, mean, 100*(mean-firstMean)/firstMean, len(ts.ExistingTensors), float64(i)/time.Since(start).Seconds())
		}
	}
	return nil
}

// sgdStep is one training step of the benchmarks: forward, L_bal + 0.5·R,
// backward, SGD; it returns after the loss reached the host.
func sgdStep(net resnet.Net, loss losses.Loss, reg *lwr.Regularizer, opt *optim.SGD, x, y *ts.Tensor) {
	var s libtorch.Scope
	defer s.Free()
	logits, feat := net.ForwardT(x, true)
	s.Keep(logits)
	s.Keep(feat)
	lb := s.Keep(loss.Loss(logits, y))
	r := s.Keep(reg.Loss(net.Head().Weight))
	total := s.Keep(lb.MustAdd(s.Keep(r.MustMulScalar(ts.FloatScalar(0.5), false)), false))
	total.MustBackward()
	opt.Step()
	total.Float64Values() // host sync
}

// objective is the benchmarks' loss: Balanced Softmax over made-up
// long-tailed counts (500, 496, … per class) and LWR on net's classifier.
func objective(vs *nn.VarStore, net resnet.Net, classes int64) (*lwr.Regularizer, losses.Loss, error) {
	reg, err := lwr.New(vs.Root().Sub("lwr"), net.Head().Weight.MustSize()[1], lwr.DefaultConfig())
	if err != nil {
		return nil, nil, err
	}
	counts := make([]int64, classes)
	for c := range counts {
		counts[c] = max(1, 500-int64(c)*4)
	}
	loss, err := losses.New(losses.DefaultConfig("balanced-softmax", 200), counts)
	return reg, loss, err
}

// libtorchBN is --libtorch-bn.
var libtorchBN bool

// block is --block: the channel block of blocked activations (0: oneDNN's).
var block int64

// convAlg is --conv-algorithm: how blocked activations are convolved.
var convAlg libtorch.ConvAlgorithm

// build makes model (resnet32 or resnet50) for classes and RGB images in
// vs, training in the blocked layout when blocked is set.
func build(vs *nn.VarStore, model string, classes int64, blocked bool) (resnet.Net, error) {
	o := resnet.Options{Classes: classes, InChannels: 3, LibtorchBatchNorm: libtorchBN, Blocked: blocked, Block: block, ConvAlgorithm: convAlg}
	if model == "resnet50" {
		return resnet.ResNet50(vs.Root(), o)
	}
	return resnet.ResNet32(vs.Root(), o)
}

// step times whole training steps (forward, Balanced Softmax + LWR,
// backward, SGD with momentum and weight decay) on one batch, in the
// trainer's code, with the weights and inputs in format.
func step(dev gotch.Device, model string, batch, side, classes int64, iters, warmup int, format string) error {
	vs := nn.NewVarStore(dev)
	net, err := build(vs, model, classes, format == libtorch.Blocked)
	if err != nil {
		return err
	}
	reg, loss, err := objective(vs, net, classes)
	if err != nil {
		return err
	}
	params := vs.TrainableVariables()
	x, err := inFormat(format, params, ts.MustRandn([]int64{batch, 3, side, side}, gotch.Float, dev))
	if err != nil {
		return err
	}
	opt, err := optim.NewSGD(params, 0.01, 0.9, 5e-4, false)
	if err != nil {
		return err
	}
	y := ts.MustRandint(classes, []int64{batch}, gotch.Int64, dev)
	times := timed(warmup, iters, func() { sgdStep(net, loss, reg, opt, x, y) })
	name := format
	if format == libtorch.Blocked {
		b := block
		if b == 0 {
			b = libtorch.TrainingBlock()
		}
		name = fmt.Sprintf("%s%d", format, b)
		if convAlg != libtorch.ConvAuto {
			name += "-" + string(convAlg)
		}
	}
	fmt.Printf("go step %s batch=%d side=%d threads=%d format=%s: median %.1f ms, min %.1f ms over %d iterations\n",
		model, batch, side, libtorch.NumThreads(), name, 1000*times[len(times)/2], 1000*times[0], len(times))
	return nil
}

// eval times evaluation: model's forward passes in eval mode without
// gradients over iters batches, in format (folded by resnet.Fold when
// fused), and prints the time per image.
func eval(dev gotch.Device, model string, batch, side, classes int64, iters, warmup int, format string, fused bool) error {
	vs := nn.NewVarStore(dev)
	net, err := build(vs, model, classes, false)
	if err != nil {
		return err
	}
	if fused {
		f, err := resnet.Fold(net)
		if err != nil {
			return err
		}
		defer f.Close()
		net = f
	}
	x, err := inFormat(format, vs.TrainableVariables(), ts.MustRandn([]int64{batch, 3, side, side}, gotch.Float, dev))
	if err != nil {
		return err
	}
	times := timed(warmup, iters, func() {
		libtorch.NoGrad(func() {
			var s libtorch.Scope
			defer s.Free()
			logits, feat := net.ForwardT(x, false)
			s.Keep(feat)
			s.Keep(s.Keep(logits).MustSoftmax(1, gotch.Double, false)).Float64Values() // host sync
		})
	})
	fmt.Printf("go eval %s batch=%d side=%d threads=%d format=%s fused=%v: median %.3f ms/image over %d batches\n",
		model, batch, side, libtorch.NumThreads(), format, fused, 1000*times[len(times)/2]/float64(batch), len(times))
	return nil
}

// regularizer times LWR's R alone on classifier weights [classes,dim]:
// the projection MLP, the similarity and the loss, forward and backward.
func regularizer(dev gotch.Device, classes, dim int64, iters, warmup int) error {
	vs := nn.NewVarStore(dev)
	reg, err := lwr.New(vs.Root().Sub("lwr"), dim, lwr.DefaultConfig())
	if err != nil {
		return err
	}
	w0 := ts.MustRandn([]int64{classes, dim}, gotch.Float, dev)
	w := vs.Root().MustAdd("w", w0, true)
	w0.MustDrop()
	times := timed(warmup, iters, func() {
		r := reg.Loss(w)
		defer r.MustDrop()
		r.MustBackward()
		r.Float64Values() // host sync
	})
	fmt.Printf("go lwr classes=%d dim=%d threads=%d products=%s: median %.1f ms, min %.1f ms over %d iterations\n",
		classes, dim, libtorch.NumThreads(), products(dev, classes*dim*dim), 1000*times[len(times)/2], 1000*times[0], len(times))
	return nil
}

// products says how MatMulT multiplies float32 matrices of macs
// multiply-adds on dev.
func products(dev gotch.Device, macs int64) string {
	if libtorch.ConvolutionRoute(dev, gotch.Float, macs) {
		return "1x1-convolutions"
	}
	return "matmul"
}

// convs times, for each 3×3 stride-1 convolution shape of model (ResNet-32's
// three stages at 32, 16 and 8 px, or ResNet-50's four at 56, 28, 14 and 7
// px) at batch, a blocked convolution's forward pass and both gradients
// (libtorch.ConvBlocked in libtorch.TrainingBlock), with direct and with
// Winograd convolutions, and prints which algorithm auto picks there.
func convs(model string, batch int64, iters, warmup int) error {
	type shape struct{ channels, side int64 }
	shapes := []shape{{16, 32}, {32, 16}, {64, 8}}
	if model == "resnet50" {
		shapes = []shape{{64, 56}, {128, 28}, {256, 14}, {512, 7}}
	} else if model != "resnet32" {
		return fmt.Errorf("--model %q: want resnet32 or resnet50", model)
	}
	b := libtorch.TrainingBlock()
	for _, s := range shapes {
		var scope libtorch.Scope
		x := scope.Keep(libtorch.ToBlocked(scope.Keep(ts.MustRandn([]int64{batch, s.channels, s.side, s.side}, gotch.Float, gotch.CPU)), b))
		x = scope.Keep(x.MustSetRequiresGrad(true, false))
		w := scope.Keep(ts.MustRandn([]int64{s.channels, s.channels, 3, 3}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true))
		auto, err := libtorch.ConvBlockedAlgorithm(x, w, b, 1, 1, libtorch.ConvAuto)
		if err != nil {
			scope.Free()
			return err
		}
		for _, alg := range []libtorch.ConvAlgorithm{libtorch.ConvDirect, libtorch.ConvWinograd} {
			used, err := libtorch.ConvBlockedAlgorithm(x, w, b, 1, 1, alg)
			if err != nil {
				scope.Free()
				return err
			}
			times := timed(warmup, iters, func() {
				y := libtorch.ConvBlocked(x, w, b, 1, 1, alg)
				loss := y.MustSum(gotch.Float, true)
				loss.MustBackward()
				loss.MustDrop()
				for _, v := range []*ts.Tensor{x, w} {
					g := v.MustGrad(false)
					g.MustZero_()
					g.MustDrop()
				}
			})
			fmt.Printf("go conv %s batch=%d channels=%d side=%d block=%d threads=%d algorithm=%s (runs %s; auto: %s): median %.2f ms, min %.2f ms over %d iterations\n",
				model, batch, s.channels, s.side, b, libtorch.NumThreads(), alg, used, auto, 1000*times[len(times)/2], 1000*times[0], len(times))
		}
		scope.Free()
	}
	return nil
}

// timed runs fn warmup+iters times and returns the seconds each of the
// last iters runs took, sorted.
func timed(warmup, iters int, fn func()) []float64 {
	var times []float64
	for i := 0; i < warmup+iters; i++ {
		start := time.Now()
		fn()
		if i >= warmup {
			times = append(times, time.Since(start).Seconds())
		}
	}
	sort.Float64s(times)
	return times
}

// inFormat stores the 4-d tensors of params and the input x in format
// (contiguous, or channels-last for channels-last and blocked) and
// returns x in it.
func inFormat(format string, params []*ts.Tensor, x *ts.Tensor) (*ts.Tensor, error) {
	switch format {
	case libtorch.Contiguous:
		return x, nil
	case libtorch.ChannelsLast, libtorch.Blocked:
		if err := libtorch.SetChannelsLast(params); err != nil {
			return nil, err
		}
		return libtorch.ToChannelsLast(x)
	}
	return nil, fmt.Errorf("--memory-format %q: want contiguous, channels-last or blocked", format)
}

// rssKB reads the resident set size of this process from /proc.
func rssKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			var kb int64
			fmt.Sscanf(strings.TrimPrefix(sc.Text(), "VmRSS:"), "%d", &kb)
			return kb
		}
	}
	return 0
}
