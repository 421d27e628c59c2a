// Package cli is what cmd/cifar and cmd/imagenet share: flags over a
// preset's defaults, the runs, the live progress line and the results
// table. Each command supplies its defaults, flags and presets.
package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/experiment"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/train"
)

// Command is a training command.
type Command struct {
	Name     string                              // as in error messages: "cifar"
	Usage    string                              // --help's text before the flags
	Defaults func() train.Config                 // the settings a preset and the flags change
	Bind     func(*pflag.FlagSet, *train.Config) // the command's flags
	Presets  []experiment.Preset
}

// Main runs the command with os.Args and exits: 0 on success or after
// --help; 1 on an error, printed as one line; 128 + the signal's number
// (130 for SIGINT, 143 for SIGTERM) when a signal stopped the run (the
// checkpoint of the last completed step is written).
func (cmd Command) Main() {
	err := cmd.Run(os.Args[1:])
	var sig *SignalError
	switch {
	case errors.As(err, &sig):
		fmt.Fprintln(os.Stderr, cmd.Name+":", err)
		os.Exit(128 + int(sig.Signal))
	case errors.Is(err, pflag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, cmd.Name+":", err)
		os.Exit(1)
	}
}

// SignalError is a run stopped by SIGINT or SIGTERM; it wraps
// train.ErrInterrupted.
type SignalError struct {
	Signal syscall.Signal
	Err    error
}

func (e *SignalError) Error() string { return fmt.Sprintf("%v: %v", e.Signal, e.Err) }
func (e *SignalError) Unwrap() error { return e.Err }

// Run parses args over the command's defaults and presets, trains each
// run of the chosen preset (or the one the flags describe), and prints
// a table of the results. Every run's folder is checked before the first
// starts. The first SIGINT or SIGTERM stops the run at the next step
// boundary with a checkpoint; a second exits at once (what is on disk is
// whole: every file is written through a rename).
func (cmd Command) Run(args []string) error {
	runs, configs, err := cmd.Configs(args)
	if err != nil || configs == nil {
		return err
	}
	ctx, sig := signalContext(cmd.Name)
	var results []train.Summary
	for i, c := range configs {
		if len(configs) > 1 {
			fmt.Printf("== %s (%d/%d): %s -> %s\n", runs[i].Label, i+1, len(configs), Describe(c), c.Out)
		} else {
			fmt.Printf("== %s -> %s\n", Describe(c), c.Out)
		}
		s, err := train.Run(ctx, c, progress(c))
		if errors.Is(err, train.ErrInterrupted) {
			return &SignalError{Signal: sig(), Err: err}
		}
		if err != nil {
			return err
		}
		results = append(results, s)
	}
	printTable(runs, results)
	return nil
}

// Configs resolves args over the command's defaults and presets into the
// runs to train, with their labels: the preset's settings, the flags over
// them, the schedule fitted to --epochs, and each run's folder (runs/NAME,
// or OUT/NAME with --preset and --out; exactly --out without a preset).
// Every run is validated and its folder checked (train.CheckOut); two runs
// never share a folder. After --list-presets it returns no runs.
func (cmd Command) Configs(args []string) ([]experiment.PresetRun, []train.Config, error) {
	// First pass: the preset decides the defaults the flags override.
	pre := pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
	pre.ParseErrorsWhitelist.UnknownFlags = true
	pre.Usage = func() {}
	pre.SetOutput(discard{})
	presetName := pre.String("preset", "", "")
	list := pre.Bool("list-presets", false, "")
	pre.BoolP("help", "h", false, "")
	pre.Parse(args)
	if *list {
		for _, p := range cmd.Presets {
			fmt.Printf("%-28s %s\n", p.Name, p.About)
		}
		return nil, nil, nil
	}
	preset := experiment.Preset{Runs: []experiment.PresetRun{{Label: "run", Apply: func(*train.Config) {}}}}
	if *presetName != "" {
		p, err := experiment.FindPreset(cmd.Presets, *presetName)
		if err != nil {
			return nil, nil, err
		}
		preset = p
	}
	var configs []train.Config
	seen := map[string]string{}
	for _, r := range preset.Runs {
		c := cmd.Defaults()
		r.Apply(&c)
		recipeEpochs := c.Epochs
		fs := pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
		fs.SortFlags = false
		fs.String("preset", "", "run a named experiment (see --list-presets); flags beside it override it")
		fs.Bool("list-presets", false, "list the presets and exit")
		cmd.Bind(fs, &c)
		fs.Usage = func() {
			fmt.Fprint(os.Stderr, cmd.Usage)
			fs.PrintDefaults()
		}
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		if fs.NArg() > 0 {
			return nil, nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
		}
		train.FollowEpochs(&c, recipeEpochs, fs.Changed)
		switch {
		case !fs.Changed("out"):
			c.Out = filepath.Join(cmp.Or(preset.Dir, "runs"), experiment.RunName(c))
		case *presetName != "":
			c.Out = filepath.Join(c.Out, experiment.RunName(c))
		}
		if err := c.Validate(); err != nil {
			return nil, nil, err
		}
		if c.Resume && len(preset.Runs) > 1 && train.CheckOut(c) != nil {
			// --resume of a preset continues it: the runs it had not
			// reached yet start.
			start := c
			start.Resume = false
			if train.CheckOut(start) == nil {
				c = start
			}
		}
		if other, ok := seen[filepath.Clean(c.Out)]; ok {
			return nil, nil, fmt.Errorf("runs %s and %s would share the folder %s", other, r.Label, c.Out)
		}
		seen[filepath.Clean(c.Out)] = r.Label
		if err := train.CheckOut(c); err != nil {
			return nil, nil, err
		}
		configs = append(configs, c)
	}
	return preset.Runs, configs, nil
}

// signalContext returns a context cancelled by the first SIGINT or
// SIGTERM, and the signal that cancelled it. A second signal exits the
// process at once with 128 + its number.
func signalContext(name string) (context.Context, func() syscall.Signal) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var first atomic.Int32
	go func() {
		s := (<-ch).(syscall.Signal)
		first.Store(int32(s))
		fmt.Fprintf(os.Stderr, "\n%s: %v: stopping at the next step and writing a checkpoint (again to exit at once)\n", name, s)
		cancel()
		s = (<-ch).(syscall.Signal)
		fmt.Fprintf(os.Stderr, "%s: %v again: exiting now; the last checkpoint is kept\n", name, s)
		os.Exit(128 + int(s))
	}()
	return ctx, func() syscall.Signal {
		if s := first.Load(); s != 0 {
			return syscall.Signal(s)
		}
		return syscall.SIGINT // cancelled otherwise: treat as an interrupt
	}
}

// Describe is a one-line summary of a run's settings.
func Describe(c train.Config) string {
	d := fmt.Sprintf("%s IF %g, %s, %s, %d epochs", c.Dataset, c.ImbalanceFactor, c.Model, c.Loss.Name, c.Epochs)
	if c.Dataset == "imagenet-lt" {
		d = fmt.Sprintf("ImageNet-LT (%s), %s, %s, %d epochs", c.DataDir, c.Model, c.Loss.Name, c.Epochs)
	}
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

func printTable(runs []experiment.PresetRun, results []train.Summary) {
	pct := func(v metrics.Number) string { return v.String() }
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
			case n > metrics.ManyShot:
				many++
			case n < metrics.FewShot:
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
