// Package cli is what cmd/cifar and cmd/imagenet share: flags over a
// preset's defaults, the runs, the live progress line and the results
// table. Each command supplies its defaults, flags and presets.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/dist"
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
	plan, err := cmd.Configs(args)
	if err != nil || plan.Configs == nil {
		return err
	}
	env, worker, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if plan.NProc > 0 && !worker {
		return launch(cmd.Name, args, plan.NProc, 10*time.Second)
	}
	if plan.Table != nil && plan.Table.Report {
		return report(plan.Table, nil)
	}
	if plan.Eval != "" {
		run := plan.Eval
		if st, err := os.Stat(run); err == nil && !st.IsDir() {
			run = filepath.Dir(run)
		}
		out := filepath.Join(run, "eval")
		if plan.EvalSplit != "" && plan.EvalSplit != "test" {
			out += "-" + plan.EvalSplit // beside the test set's, not over it
		}
		ev, err := train.EvaluateCheckpoint(context.Background(), plan.Eval, plan.Configs[0].Device, plan.Configs[0].Threads, plan.EvalSplit, plan.Configs[0].FusedEval, out)
		if err != nil {
			return fmt.Errorf("--eval: %w", err)
		}
		m := ev.Metrics
		fmt.Printf("%s (epoch %d): top-1 %s  many %s  medium %s  few %s  NLL %s  ECE %s\nwritten to %s: eval.json, predictions.csv, confusion.png\n",
			ev.Checkpoint, ev.Epoch, m.Top1, m.Many, m.Medium, m.Few, m.NLL, m.ECE, out)
		return nil
	}
	if plan.Export != "" {
		c := plan.Configs[0]
		if err := train.ExportWeights(filepath.Join(c.Out, train.CheckpointFile), plan.Export); err != nil {
			return fmt.Errorf("--export: %w", err)
		}
		fmt.Printf("wrote the network of %s to %s\n", c.Out, plan.Export)
		return nil
	}
	lead := true // prints and writes the table: a run on its own, or rank 0
	if worker {
		if plan.Parallel > 1 {
			return errors.New("--parallel: a data-parallel worker trains one run at a time")
		}
		g, err := dist.Join(env, plan.Backend, plan.DistTimeout)
		if err != nil {
			return err
		}
		defer g.Close()
		lead = env.Rank == 0
		for i := range plan.Configs {
			plan.Configs[i].Dist = g
			plan.Configs[i].Quiet = plan.Configs[i].Quiet || !lead
		}
	}
	ctx, sig := signalContext(cmd.Name)
	n := len(plan.Configs)
	summaries := make([]*train.Summary, n)
	errs := make([]error, n)
	var mu sync.Mutex // stdout and stderr lines of runs side by side
	runOne := func(i int) {
		c := plan.Configs[i]
		mu.Lock()
		switch {
		case plan.Done[i]:
			if lead {
				fmt.Printf("== %s (%d/%d): finished earlier, in %s\n", plan.Labels[i], i+1, n, c.Out)
			}
			mu.Unlock()
			return
		case !lead:
		case n > 1:
			fmt.Printf("== %s (%d/%d): %s -> %s\n", plan.Labels[i], i+1, n, Describe(c), c.Out)
		default:
			fmt.Printf("== %s -> %s\n", Describe(c), c.Out)
		}
		mu.Unlock()
		s, err := train.Run(ctx, c, console(c, plan.Labels[i], plan.Parallel > 1))
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			summaries[i] = &s
		}
		errs[i] = err
		if err != nil && plan.Table != nil && !errors.Is(err, train.ErrInterrupted) {
			// A table goes on: the failure is reported beside the rows.
			fmt.Fprintf(os.Stderr, "%s: %s: %v\n", cmd.Name, plan.Labels[i], err)
		}
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, plan.Parallel); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				runOne(i)
			}
		}()
	}
	for i := range plan.Configs {
		stopNow := ctx.Err() != nil
		mu.Lock()
		for _, err := range errs {
			// Without a table the first error stops the preset.
			stopNow = stopNow || (err != nil && plan.Table == nil)
		}
		mu.Unlock()
		if stopNow {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	failed := map[string]string{}
	var results []train.Summary
	var labels []string
	for i, err := range errs {
		switch {
		case errors.Is(err, train.ErrInterrupted):
			if plan.Table != nil && lead {
				report(plan.Table, failed)
			}
			return &SignalError{Signal: sig(), Err: err}
		case err != nil && plan.Table != nil:
			failed[filepath.Clean(plan.Configs[i].Out)] = firstLine(err.Error())
		case err != nil:
			return err
		case summaries[i] != nil:
			results = append(results, *summaries[i])
			labels = append(labels, plan.Labels[i])
		}
	}
	if !lead {
		return nil
	}
	if plan.Table != nil {
		if err := report(plan.Table, failed); err != nil {
			return err
		}
		if len(failed) > 0 {
			return fmt.Errorf("%d of %d runs failed (listed in %s)", len(failed), n, filepath.Join(plan.Table.Dir, "table.md"))
		}
		return nil
	}
	printTable(labels, results)
	return nil
}

// report writes a table's table.md and table.csv from its finished runs and
// prints table.md.
func report(t *TablePlan, failed map[string]string) error {
	rows, err := experiment.Collect(t.Rows, failed, train.ClassifierStats)
	if err != nil {
		return err
	}
	if err := experiment.WriteReport(t.Dir, t.Name, rows); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(t.Dir, "table.md"))
	if err != nil {
		return err
	}
	fmt.Printf("\n%s\nwritten to %s and table.csv\n", b, filepath.Join(t.Dir, "table.md"))
	return nil
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// Plan is what a command line asks for: the runs to train, with their
// labels, and for a table its rows and report folder.
type Plan struct {
	Labels  []string       // one per run: the preset row's label (with the seed in a table)
	Configs []train.Config // one per run, validated, each with its own folder
	Done    []bool         // one per run: a table run that already finished (summary.json), skipped
	Table   *TablePlan     // nil unless the preset is a table
	Export  string         // --export: write the run's network to this file instead of training
	Eval    string         // --eval: evaluate this run folder or checkpoint instead of training
	// EvalSplit is the ImageNet-LT list --eval evaluates on when
	// --test-split is given ("" : the run's own).
	EvalSplit string
	Parallel  int // --parallel: runs trained at once (1: one after the other)
	// Data-parallel training: NProc workers to launch on this machine (0:
	// none), and the backend and timeout of a worker's process group.
	NProc       int
	Backend     string
	DistTimeout time.Duration
}

// TablePlan is a table preset's rows and where its report goes.
type TablePlan struct {
	Name   string
	Dir    string // DIR of DIR/<row>/seed<k>; table.md and table.csv go here
	Rows   []experiment.Row
	Report bool // --report: write the report from the finished runs, train nothing
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tableNames lists the table presets of presets.
func tableNames(presets []experiment.Preset) string {
	var names []string
	for _, p := range presets {
		if p.Table {
			names = append(names, p.Name)
		}
	}
	return strings.Join(names, ", ")
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

// console is where run c reports as it trains: stderr, live when it is
// a terminal and the run has it to itself; each line prefixed with the
// run's label when runs train side by side (--parallel). nil with --quiet.
func console(c train.Config, label string, parallel bool) *train.Console {
	if c.Quiet {
		return nil
	}
	con := &train.Console{W: os.Stderr}
	if parallel {
		con.Prefix = fmt.Sprintf("[%s seed %d] ", label, c.Seed)
	} else if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		con.Live = true
	}
	return con
}

func printTable(labels []string, results []train.Summary) {
	pct := func(v metrics.Number) string { return v.String() }
	fmt.Printf("\n%-24s %6s %6s %6s %6s %6s %6s   %s\n", "run", "top-1", "top-5", "many", "medium", "few", "ECE", "outputs")
	for i, s := range results {
		label := labels[i]
		if len(results) == 1 {
			label = s.Config.Loss.Name
			if s.Config.LWR {
				label += " + LWR"
			}
		}
		f := s.Final
		fmt.Printf("%-24s %6s %6s %6s %6s %6s %6s   %s\n", label, pct(f.Top1), pct(f.Top5), pct(f.Many), pct(f.Medium), pct(f.Few), pct(f.ECE),
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
