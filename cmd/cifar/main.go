// Command cifar trains ResNet-32 on a long-tailed CIFAR-10/100, Fashion-MNIST
// or synthetic data set with a balanced loss and Logit Weight Repulsion.
//
//	go run ./cmd/cifar                         # BS + LWR on Fashion-MNIST-LT (offline)
//	go run ./cmd/cifar --preset demo           # CE vs BS vs BS + LWR, short schedule, table
//	go run ./cmd/cifar --preset table1-bs-lwr  # the paper's CIFAR-100-LT IF100 row
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/train"
)

const usage = `cifar trains ResNet-32 on a long-tailed image data set with a balanced loss
plus Logit Weight Repulsion (LWR), and evaluates top-1 and many/medium/few-shot
accuracy (classes with >100, 20-100 and <20 training images).

Usage:
  cifar [--preset NAME] [flags]

The defaults are the paper's CIFAR recipe (ResNet-32, batch 128, SGD with
momentum 0.9, lr 0.1 with 5 warm-up epochs and x0.1 at epochs 140 and 170 of 200,
weight decay 5e-4, Balanced Softmax + LWR with theta 0.4, tau 0.1, projection and
lambda(t) = (1-t/T)^2) on Fashion-MNIST-LT IF 100, which needs no download.
A preset sets a whole experiment; flags given beside it override its settings.

Outputs in --out: config.json, log.jsonl (one line per epoch), checkpoint.pt
(every epoch and on SIGINT/SIGTERM; --resume continues), summary.json.

Flags:
`

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, train.ErrInterrupted):
		fmt.Fprintln(os.Stderr, "cifar:", err)
	case errors.Is(err, pflag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "cifar:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	// First pass: the preset decides the defaults the flags override.
	pre := pflag.NewFlagSet("cifar", pflag.ContinueOnError)
	pre.ParseErrorsWhitelist.UnknownFlags = true
	pre.Usage = func() {}
	pre.SetOutput(discard{})
	presetName := pre.String("preset", "", "")
	list := pre.Bool("list-presets", false, "")
	pre.BoolP("help", "h", false, "")
	pre.Parse(args)
	if *list {
		for _, p := range train.Presets() {
			fmt.Printf("%-28s %s\n", p.Name, p.About)
		}
		return nil
	}
	runs := []train.PresetRun{{Label: "run", Apply: func(*train.Config) {}}}
	if *presetName != "" {
		p, err := train.FindPreset(*presetName)
		if err != nil {
			return err
		}
		runs = p.Runs
	}
	var configs []train.Config
	for _, r := range runs {
		c := train.DefaultConfig()
		r.Apply(&c)
		fs := pflag.NewFlagSet("cifar", pflag.ContinueOnError)
		fs.SortFlags = false
		fs.String("preset", "", "run a named experiment (see --list-presets); flags beside it override it")
		fs.Bool("list-presets", false, "list the presets and exit")
		train.BindFlags(fs, &c)
		fs.Usage = func() {
			fmt.Fprint(os.Stderr, usage)
			fs.PrintDefaults()
		}
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
		}
		if err := c.Validate(); err != nil {
			return err
		}
		configs = append(configs, c)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []train.Summary
	for i, c := range configs {
		if len(configs) > 1 {
			fmt.Printf("== %s (%d/%d): %s -> %s\n", runs[i].Label, i+1, len(configs), describe(c), c.Out)
		} else {
			fmt.Printf("== %s -> %s\n", describe(c), c.Out)
		}
		s, err := train.Run(ctx, c, progress(c))
		if err != nil {
			return err
		}
		results = append(results, s)
	}
	printTable(runs, results)
	return nil
}

func describe(c train.Config) string {
	d := fmt.Sprintf("%s IF %g, %s, %s, %d epochs", c.Dataset, c.ImbalanceFactor, c.Model, c.Loss.Name, c.Epochs)
	if c.LWR {
		d += fmt.Sprintf(" + LWR (θ %g, τ %g)", c.LWRConfig.Theta, c.LWRConfig.Tau)
	}
	return d
}

// progress is the live progress line's writer: the terminal, or nothing
// when stderr is not one (a log file) or --quiet.
func progress(c train.Config) io.Writer {
	if c.Quiet {
		return nil // a nil interface: a nil *os.File would not compare equal to nil
	}
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return os.Stderr
}

func printTable(runs []train.PresetRun, results []train.Summary) {
	pct := func(v train.Number) string { return v.String() }
	fmt.Printf("\n%-24s %6s %6s %6s %6s   %s\n", "run", "top-1", "many", "medium", "few", "outputs")
	for i, s := range results {
		label := runs[i].Label
		if len(results) == 1 {
			label = s.Config.Loss.Name
			if s.Config.LWR {
				label += " + LWR"
			}
		}
		f := s.Final
		fmt.Printf("%-24s %6s %6s %6s %6s   %s\n", label, pct(f.Top1), pct(f.Many), pct(f.Medium), pct(f.Few),
			filepath.Join(s.Config.Out, "summary.json"))
	}
	groups := []string{}
	if len(results) > 0 {
		var many, med, few int
		for _, n := range results[0].TrainCounts {
			switch {
			case n > train.ManyShot:
				many++
			case n < train.FewShot:
				few++
			default:
				med++
			}
		}
		groups = append(groups, fmt.Sprintf("%d many-shot, %d medium-shot, %d few-shot classes", many, med, few))
	}
	fmt.Println(strings.Join(groups, ""))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
