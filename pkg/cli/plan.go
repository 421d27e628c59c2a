package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/experiment"
	"github.com/lwr-go/lwr/pkg/regularfile"
	"github.com/lwr-go/lwr/pkg/train"
)

// options are a command's flags that are not a run's settings.
type options struct {
	seeds                 []int
	report                bool
	parallel, nproc       int
	eval, export, backend string
	distTimeout           time.Duration
}

// flagSet is the command's flag set over c (the run's settings, with c's
// values as defaults) and o.
func (cmd Command) flagSet(c *train.Config, o *options) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.String("preset", "", "run a named experiment (see --list-presets); flags beside it override it")
	fs.String("config", "", "start from the settings of a run's config.json, its --out included (flags beside it override them, as with --preset): --resume continues that run, a new --out runs it again")
	fs.Bool("list-presets", false, "list the presets and exit")
	fs.Var(newIntsValue(&o.seeds), "seeds", "run once per seed (comma-separated), each in its own folder; a table's rows × seeds go to DIR/<row>/seed<k> and are reported as mean ± std")
	fs.BoolVar(&o.report, "report", false, "with a table preset: write table.md and table.csv from the runs already finished, train nothing")
	fs.IntVar(&o.parallel, "parallel", 1, "train this many runs of a preset at once, the CPU threads split between them (--threads 0), their lines on stderr prefixed with the row and seed (no live progress line); on one GPU they share the card")
	fs.StringVar(&o.eval, "eval", "", "evaluate the checkpoint of a run folder (or a checkpoint file) on its test set and train nothing: the metrics, eval.json with per-class precision and recall, predictions.csv and confusion.png in RUN/eval (ImageNet-LT: with --test-split val, on the val list, in RUN/eval-val)")
	fs.IntVar(&o.nproc, "nproc-per-node", 0, "train data-parallel with this many worker processes on this machine (the global --batch-size split between them; with GPUs, one per GPU), as torchrun --nproc-per-node does; under torchrun itself, leave it out")
	fs.StringVar(&o.backend, "backend", "auto", "a data-parallel run's collectives: gloo, nccl (CUDA) or auto")
	fs.DurationVar(&o.distTimeout, "dist-timeout", 3*time.Minute, "a data-parallel run stops when a worker has not answered a collective (or the start) for this long")
	fs.StringVar(&o.export, "export", "", "write the network of the run in --out (its checkpoint) to this .safetensors file, in PyTorch's names (torchvision's for ResNet-50, LDAM-DRW's for ResNet-32), and train nothing")
	cmd.Bind(fs, c)
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, cmd.Usage)
		fs.PrintDefaults()
	}
	return fs
}

// given is a flag the user set, and its value as text.
type given struct{ name, value string }

// Configs resolves args over the command's defaults and presets into the
// runs to train: the preset's settings, the flags over them, the schedule
// fitted to --epochs, one run per --seeds seed, and each run's folder
// (runs/NAME, or OUT/NAME with --preset and --out, exactly --out without a
// preset; a table's runs in runs/<table>/<row>/seed<k>, or OUT/<table>/…).
// The flags are parsed once, then set on each preset row's settings. Every
// run is validated and its folder checked (train.CheckOut); two runs never
// share a folder. After --list-presets it returns no runs.
func (cmd Command) Configs(args []string) (*Plan, error) {
	preset, list, err := cmd.findPreset(args)
	if err != nil || list {
		return &Plan{}, err
	}
	// The flags, parsed once over the first row (whose values --help shows).
	first := cmd.Defaults()
	preset.Runs[0].Apply(&first.Run)
	var o options
	fs := cmd.flagSet(&first, &o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	var set []given
	fs.Visit(func(f *pflag.Flag) { set = append(set, given{f.Name, f.Value.String()}) })
	plan := &Plan{Export: o.export, Eval: o.eval, Parallel: o.parallel, NProc: o.nproc, Backend: o.backend, DistTimeout: o.distTimeout}
	if preset.Table {
		plan.Table = &TablePlan{Name: preset.Name, Report: o.report, Dir: cmp.Or(preset.Dir, filepath.Join("runs", preset.Name))}
		if fs.Changed("out") {
			plan.Table.Dir = filepath.Join(first.Out, preset.Name)
		}
	}
	if fs.Changed("test-split") {
		plan.EvalSplit = first.TestSplit
	}
	if err := cmd.checkOptions(o, fs.Changed, preset, plan); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, r := range preset.Runs {
		c := cmd.Defaults()
		r.Apply(&c.Run)
		recipe := c.Run
		recipeEpochs := c.Epochs
		row := cmd.flagSet(&c, &options{})
		for _, g := range set {
			if err := row.Set(g.name, g.value); err != nil {
				return nil, fmt.Errorf("--%s %s: %w", g.name, g.value, err)
			}
		}
		train.FollowEpochs(&c, recipeEpochs, row.Changed)
		if c.Stage2 != "" && !row.Changed("sampler") {
			c.Sampler = "class" // decoupled training's second stage samples classes evenly
		}
		runSeeds, err := seedsOf(c, o, row.Changed, preset, plan.Table != nil)
		if err != nil {
			return nil, err
		}
		if plan.Table != nil {
			paper := math.NaN() // the paper's figure, only beside the paper's recipe
			if r.Paper != 0 && experiment.PaperApplies(recipe, c.Run) {
				paper = r.Paper
			}
			plan.Table.Rows = append(plan.Table.Rows, experiment.Row{Label: r.Label,
				Dir: filepath.Join(plan.Table.Dir, experiment.RowName(c.Run)), Seeds: runSeeds, Paper: paper})
		}
		if o.parallel > 1 {
			if c.Threads == 0 {
				c.Threads = max(1, runtime.NumCPU()/o.parallel)
			}
		}
		for _, seed := range runSeeds {
			if err := cmd.addRun(plan, c, seed, r.Label, o, row.Changed("out") || fs.Changed("config"), preset, seen); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

// findPreset reads --preset and --list-presets from args (the other flags
// are parsed later, over the preset's settings): the preset named, or one
// run of the defaults; list is true after --list-presets, which printed
// the presets.
func (cmd Command) findPreset(args []string) (preset experiment.Preset, list bool, err error) {
	pre := pflag.NewFlagSet(cmd.Name, pflag.ContinueOnError)
	pre.ParseErrorsWhitelist.UnknownFlags = true
	pre.Usage = func() {}
	pre.SetOutput(discard{})
	name := pre.String("preset", "", "")
	file := pre.String("config", "", "")
	listFlag := pre.Bool("list-presets", false, "")
	pre.BoolP("help", "h", false, "")
	pre.Parse(args)
	if *listFlag {
		for _, p := range cmd.Presets {
			fmt.Printf("%-28s %s\n", p.Name, p.About)
		}
		return preset, true, nil
	}
	if *file != "" {
		if *name != "" {
			return preset, false, errors.New("--config and --preset: give one")
		}
		saved, err := readConfig(*file)
		if err != nil {
			return preset, false, err
		}
		return experiment.Preset{Runs: []experiment.PresetRun{{Label: "run", Apply: func(r *config.Run) {
			// The file's settings; how this process runs (not in
			// config.json) stays as the defaults and flags say.
			s := saved
			s.Resume, s.Force, s.Quiet, s.LogEvery, s.TensorBoard = r.Resume, r.Force, r.Quiet, r.LogEvery, r.TensorBoard
			s.Provenance = nil // the new run records its own
			*r = s
		}}}}, false, nil
	}
	if *name == "" {
		return experiment.Preset{Runs: []experiment.PresetRun{{Label: "run", Apply: func(*config.Run) {}}}}, false, nil
	}
	preset, err = experiment.FindPreset(cmd.Presets, *name)
	return preset, false, err
}

// checkOptions rejects the command's own flags out of range or together
// where they cannot be, naming them.
func (cmd Command) checkOptions(o options, changed func(string) bool, preset experiment.Preset, plan *Plan) error {
	switch {
	case o.nproc < 0 || o.nproc > 256:
		return fmt.Errorf("--nproc-per-node %d: want 1..256", o.nproc)
	case o.distTimeout < time.Second:
		return fmt.Errorf("--dist-timeout %v: want at least 1s", o.distTimeout)
	case o.nproc > 0 && (o.parallel > 1 || o.export != "" || o.eval != "" || o.report):
		return errors.New("--nproc-per-node: trains one run after another; not with --parallel, --export, --eval or --report")
	case o.parallel < 1 || o.parallel > 64:
		return fmt.Errorf("--parallel %d: want 1..64", o.parallel)
	case o.export != "" && (len(preset.Runs) > 1 || plan.Table != nil || changed("seeds")):
		return errors.New("--export: one run at a time (give its --out)")
	case o.report && plan.Table == nil:
		return fmt.Errorf("--report: wants a table preset (%s)", tableNames(cmd.Presets))
	case changed("seed") && changed("seeds"):
		return errors.New("--seed and --seeds: give one")
	}
	return nil
}

// seedsOf is the seeds a row runs with: --seeds, else a table's own, else
// the run's --seed.
func seedsOf(c train.Config, o options, changed func(string) bool, preset experiment.Preset, table bool) ([]int64, error) {
	switch {
	case changed("seeds"):
		var out []int64
		for _, s := range o.seeds {
			if slices.Contains(out, int64(s)) {
				return nil, fmt.Errorf("--seeds: seed %d given twice", s)
			}
			out = append(out, int64(s))
		}
		if len(out) == 0 {
			return nil, errors.New("--seeds: want at least one seed")
		}
		return out, nil
	case table && len(preset.Seeds) > 0 && !changed("seed"):
		return preset.Seeds, nil
	}
	return []int64{c.Seed}, nil
}

// addRun adds to plan the run of base with seed, in its folder: a table's
// DIR/<row>/seed<k> (continued: done when finished, resumed when
// stopped), runs/NAME, or under --out. It validates the run and checks its
// folder; seen maps the folders taken so far to their runs' labels.
func (cmd Command) addRun(plan *Plan, base train.Config, seed int64, label string, o options, outGiven bool,
	preset experiment.Preset, seen map[string]string) error {
	c := base
	c.Seed = seed
	done := false
	switch {
	case plan.Table != nil:
		c.Out = experiment.SeedDir(filepath.Join(plan.Table.Dir, experiment.RowName(c.Run)), seed)
		label = fmt.Sprintf("%s, seed %d", label, seed)
		// A table continues: finished seeds are skipped, stopped ones
		// resumed, the rest start.
		done = !c.Force && exists(filepath.Join(c.Out, train.SummaryFile))
		c.Resume = !c.Force && (exists(filepath.Join(c.Out, train.CheckpointFile)) ||
			exists(filepath.Join(c.Out, train.PrevCheckpoint)) || exists(filepath.Join(c.Out, train.ConfigFile)))
	case !outGiven:
		c.Out = filepath.Join(cmp.Or(preset.Dir, "runs"), experiment.RunName(c.Run))
	case preset.Name != "" || len(o.seeds) > 1:
		c.Out = filepath.Join(base.Out, experiment.RunName(c.Run))
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Resume && len(preset.Runs) > 1 && plan.Table == nil && train.CheckOut(c) != nil {
		// --resume of a preset continues it: the runs it had not reached
		// yet start.
		start := c
		start.Resume = false
		if train.CheckOut(start) == nil {
			c = start
		}
	}
	if other, ok := seen[filepath.Clean(c.Out)]; ok {
		return fmt.Errorf("runs %s and %s would share the folder %s", other, label, c.Out)
	}
	seen[filepath.Clean(c.Out)] = label
	if !done && !o.report && o.export == "" && o.eval == "" {
		if err := train.CheckOut(c); err != nil {
			return err
		}
	}
	plan.Labels = append(plan.Labels, label)
	plan.Configs = append(plan.Configs, c)
	plan.Done = append(plan.Done, done)
	return nil
}

// readConfig reads a run's settings from a config.json (--config): every
// field it has, nothing else (an unknown field is an error naming it).
func readConfig(path string) (config.Run, error) {
	var c config.Run
	b, err := regularfile.ReadFile(path, config.MaxJSONBytes, "config files")
	if err != nil {
		return c, fmt.Errorf("--config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("--config %s: %w (want a run's config.json)", path, err)
	}
	return c, nil
}
