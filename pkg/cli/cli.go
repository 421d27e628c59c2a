// Package cli is what cmd/cifar and cmd/imagenet share: flags over a
// preset's defaults, the runs, the live progress line and the results
// table. Each command supplies its defaults, flags and presets.
package cli

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

// Command is a training command.
type Command struct {
	Name     string                              // as in error messages: "cifar"
	Usage    string                              // --help's text before the flags
	Defaults func() train.Config                 // the settings a preset and the flags change
	Bind     func(*pflag.FlagSet, *train.Config) // the command's flags
	Presets  []train.Preset
}

// Main runs the command with os.Args and exits: 0 on success, after
// --help, or when interrupted (the checkpoint is written); 1 on an error,
// printed as one line.
func (cmd Command) Main() {
	err := cmd.Run(os.Args[1:])
	switch {
	case errors.Is(err, train.ErrInterrupted):
		fmt.Fprintln(os.Stderr, cmd.Name+":", err)
	case errors.Is(err, pflag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, cmd.Name+":", err)
		os.Exit(1)
	}
}

// Run parses args over the command's defaults and presets, trains each
// run of the chosen preset (or the one the flags describe), and prints
// a table of the results.
func (cmd Command) Run(args []string) error {
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
		return nil
	}
	runs := []train.PresetRun{{Label: "run", Apply: func(*train.Config) {}}}
	if *presetName != "" {
		p, err := train.FindPreset(cmd.Presets, *presetName)
		if err != nil {
			return err
		}
		runs = p.Runs
	}
	var configs []train.Config
	for _, r := range runs {
		c := cmd.Defaults()
		r.Apply(&c)
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
			fmt.Printf("== %s (%d/%d): %s -> %s\n", runs[i].Label, i+1, len(configs), Describe(c), c.Out)
		} else {
			fmt.Printf("== %s -> %s\n", Describe(c), c.Out)
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
