// Package experiment names the paper's experiments: presets of one or more
// runs (a table's rows), each a change to a command's default
// configuration, and the folder name that tells runs apart.
package experiment

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lwr-go/lwr/pkg/config"
)

// A Preset is a named experiment: one or more runs, each a change to the
// default configuration. The user's flags apply on top of each run.
type Preset struct {
	Name  string
	About string
	Dir   string // the folder of the runs' folders when --out is not given ("" for runs)
	Runs  []PresetRun
	// Table: the runs are a table's rows, each run once per seed into
	// DIR/<row>/seed<k>; finished seeds are skipped, stopped ones resumed,
	// and table.md and table.csv report mean ± std over seeds.
	Table bool
	Seeds []int64 // a table's seeds when --seeds is not given (default: 0)
}

// PresetRun is one configuration of a preset, with a short label for tables.
type PresetRun struct {
	Label string
	Apply func(*config.Run)
	Paper float64 // the paper's top-1 for this row; 0: not published (or not known here)
}

// lossLabels are the balanced losses the CIFAR presets cover, by preset
// name part: every one of them combines with LWR.
var lossLabels = map[string]string{
	"ce": "ce", "bs": "balanced-softmax", "la": "logit-adjustment", "cb": "cb-ce",
	"ce-drw": "ce-drw", "ldam-drw": "ldam-drw", "focal": "focal", "ib": "ib",
}

// cifarRecipe is the paper's CIFAR recipe (ResNet-32, 200 epochs, lr ×0.1 at
// 140 and 170, weight decay 5e-4) on the given data set and imbalance.
func cifarRecipe(dataset string, imb float64, loss string, withLWR bool) func(*config.Run) {
	return func(c *config.Run) {
		c.Dataset, c.ImbalanceFactor = dataset, imb
		c.Epochs, c.Milestones, c.WeightDecay, c.BatchSize, c.LR = 200, []int{140, 170}, 5e-4, 128, 0.1
		c.Loss = config.DefaultLoss(loss, 200)
		c.LWR, c.LWRConfig, c.LWRSchedule = withLWR, config.DefaultLWR(), config.Quadratic
	}
}

// RunName names a run's folder after what distinguishes it: the data set
// and its imbalance, the model where it is not the data set's usual one,
// the loss, LWR and each LWR setting that differs from the paper's, and a
// seed other than 0. Every row of every preset gets its own name, so rows
// never share a folder; cmd puts a run in runs/NAME unless --out is given
// (with a preset, in OUT/NAME).
func RunName(c config.Run) string {
	parts := []string{c.Dataset}
	switch c.Dataset {
	case "imagenet-lt":
		if c.Model != "resnet50" {
			parts = append(parts, c.Model)
		}
	default:
		parts = append(parts, "lt", "if"+strconv.FormatFloat(c.ImbalanceFactor, 'g', -1, 64))
		if c.Model != "resnet32" {
			parts = append(parts, c.Model)
		}
	}
	loss := c.Loss.Name
	for short, name := range lossLabels {
		if name == loss {
			loss = short
		}
	}
	parts = append(parts, loss)
	if c.LWR {
		parts = append(parts, "lwr")
		d := config.DefaultLWR()
		if !c.LWRConfig.Projection {
			parts = append(parts, "noproj")
		}
		if c.LWRConfig.Theta != d.Theta {
			parts = append(parts, "theta"+strconv.FormatFloat(c.LWRConfig.Theta, 'g', -1, 64))
		}
		if c.LWRConfig.Tau != d.Tau {
			parts = append(parts, "tau"+strconv.FormatFloat(c.LWRConfig.Tau, 'g', -1, 64))
		}
		if c.LWRConfig.Reduction != d.Reduction {
			parts = append(parts, string(c.LWRConfig.Reduction))
		}
		if c.LWRSchedule != config.Quadratic {
			parts = append(parts, string(c.LWRSchedule))
		}
	}
	if c.Seed != 0 {
		parts = append(parts, "seed"+strconv.FormatInt(c.Seed, 10))
	}
	return strings.Join(parts, "-")
}

// Presets lists every preset, sorted by name. Table numbers follow the
// project brief: table1 CIFAR-100-LT at IF 100 (and -if10, -if50), table4
// the LWR ablations on Balanced Softmax, table5 CIFAR-10-LT; ImageNet-LT
// (table3) is cmd/imagenet's.
func Presets() []Preset {
	var out []Preset
	for part, loss := range lossLabels {
		for _, withLWR := range []bool{false, true} {
			for _, imb := range []float64{10, 50, 100} {
				name := "table1-" + part
				if withLWR {
					name += "-lwr"
				}
				if imb != 100 {
					name += "-if" + strconv.Itoa(int(imb))
				}
				about := fmt.Sprintf("CIFAR-100-LT IF %g, ResNet-32, %s", imb, loss)
				if withLWR {
					about += " + LWR"
				}
				out = append(out, Preset{Name: name, About: about, Runs: []PresetRun{{Label: labelOf(part, withLWR), Apply: cifarRecipe("cifar100", imb, loss, withLWR)}}})
				if imb == 100 {
					name5 := strings.Replace(name, "table1-", "table5-", 1)
					out = append(out, Preset{Name: name5, About: strings.Replace(about, "CIFAR-100", "CIFAR-10", 1),
						Runs: []PresetRun{{Label: labelOf(part, withLWR), Apply: cifarRecipe("cifar10", imb, loss, withLWR)}}})
				}
			}
		}
	}
	out = append(out, ablations()...)
	demo := func(loss string, withLWR bool) func(*config.Run) {
		return func(c *config.Run) {
			// 20 epochs: the three runs take about 10 minutes on 2 CPU cores.
			config.ShortSchedule(c, 20)
			c.EvalEvery = c.Epochs // one evaluation, at the end: it costs two epochs
			c.Dataset, c.ImbalanceFactor = "fashion-mnist", 100
			setLoss(c, loss, withLWR)
		}
	}
	out = append(out, Preset{
		Name:  "demo",
		Dir:   "runs/demo",
		About: "the offline main job: Fashion-MNIST-LT IF 100, ResNet-32, CE vs Balanced Softmax vs BS + LWR, 20 epochs",
		Runs: []PresetRun{
			{Label: "CE", Apply: demo("ce", false)},
			{Label: "BS", Apply: demo("balanced-softmax", false)},
			{Label: "BS + LWR", Apply: demo("balanced-softmax", true)},
		},
	})
	out = append(out, cifarTables()...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ablations are the LWR ablations on CIFAR-100-LT IF 100, Balanced
// Softmax + LWR, one preset each (rows of table4).
func ablations() []Preset {
	ablation := func(name, about string, edit func(*config.Run)) Preset {
		return Preset{Name: name, About: "CIFAR-100-LT IF 100, BS + LWR, " + about, Runs: []PresetRun{{Label: name, Apply: func(c *config.Run) {
			cifarRecipe("cifar100", 100, "balanced-softmax", true)(c)
			edit(c)
		}}}}
	}
	out := []Preset{
		ablation("table4-noproj", "without the projection MLP", func(c *config.Run) { c.LWRConfig.Projection = false }),
		ablation("table4-constant", "constant λ = 1", func(c *config.Run) { c.LWRSchedule = config.Constant }),
		ablation("table4-nomask", "no threshold (θ = -1)", func(c *config.Run) { c.LWRConfig.Theta = -1 }),
		ablation("table4-mean", "R averaged over classes", func(c *config.Run) { c.LWRConfig.Reduction = config.Mean }),
	}
	for _, th := range []float64{0.2, 0.6} {
		out = append(out, ablation(fmt.Sprintf("table4-theta%g", th), fmt.Sprintf("θ = %g", th), func(c *config.Run) { c.LWRConfig.Theta = th }))
	}
	for _, tau := range []float64{0.05, 0.5} {
		out = append(out, ablation(fmt.Sprintf("table4-tau%g", tau), fmt.Sprintf("τ = %g", tau), func(c *config.Run) { c.LWRConfig.Tau = tau }))
	}
	return out
}

// PaperApplies reports whether a row's published top-1 may stand beside
// run: its settings are the row's recipe but for the seed and the data
// folder. A flag that changes the data set, the imbalance, the schedule or
// any other setting makes the comparison meaningless (the paper's 46.3
// beside a synthetic run's 10.0).
func PaperApplies(recipe, run config.Run) bool {
	recipe.Seed, run.Seed = 0, 0
	recipe.DataDir, run.DataDir = "", ""
	return len(recipe.Diff(run)) == 0
}

// paperCIFAR100 is the paper's CIFAR-100-LT IF 100 top-1 of the rows this
// project knows it for, by label.
var paperCIFAR100 = map[string]float64{"BS": 46.3, "BS + LWR": 50.7}

// lossRows are a table's rows: every balanced loss without and with LWR,
// on the recipe of make, in a fixed order.
func lossRows(make func(loss string, withLWR bool) func(*config.Run), paper map[string]float64) []PresetRun {
	var parts []string
	for part := range lossLabels {
		parts = append(parts, part)
	}
	sort.Strings(parts)
	var rows []PresetRun
	for _, part := range parts {
		for _, withLWR := range []bool{false, true} {
			label := labelOf(part, withLWR)
			rows = append(rows, PresetRun{Label: label, Apply: make(lossLabels[part], withLWR), Paper: paper[label]})
		}
	}
	return rows
}

// cifarTables are the paper's CIFAR tables as table presets (every row ×
// --seeds, reported as mean ± std), and the offline Fashion-MNIST-LT table.
func cifarTables() []Preset {
	recipe := func(dataset string, imb float64) func(string, bool) func(*config.Run) {
		return func(loss string, withLWR bool) func(*config.Run) { return cifarRecipe(dataset, imb, loss, withLWR) }
	}
	var out []Preset
	for _, imb := range []float64{100, 50, 10} {
		name, paper := "table1", paperCIFAR100
		if imb != 100 {
			name, paper = fmt.Sprintf("table1-if%g", imb), nil
		}
		out = append(out, Preset{Name: name, Table: true, Dir: "runs/" + name,
			About: fmt.Sprintf("table: CIFAR-100-LT IF %g, ResNet-32, every balanced loss with and without LWR, × --seeds", imb),
			Runs:  lossRows(recipe("cifar100", imb), paper)})
	}
	out = append(out, Preset{Name: "table5", Table: true, Dir: "runs/table5",
		About: "table: CIFAR-10-LT IF 100, ResNet-32, every balanced loss with and without LWR, × --seeds",
		Runs:  lossRows(recipe("cifar10", 100), nil)})
	t4 := Preset{Name: "table4", Table: true, Dir: "runs/table4",
		About: "table: LWR ablations on CIFAR-100-LT IF 100, Balanced Softmax, × --seeds",
		Runs: []PresetRun{
			{Label: "BS", Apply: cifarRecipe("cifar100", 100, "balanced-softmax", false), Paper: paperCIFAR100["BS"]},
			{Label: "BS + LWR", Apply: cifarRecipe("cifar100", 100, "balanced-softmax", true), Paper: paperCIFAR100["BS + LWR"]},
		}}
	for _, p := range ablations() {
		t4.Runs = append(t4.Runs, PresetRun{Label: strings.TrimPrefix(p.Name, "table4-"), Apply: p.Runs[0].Apply})
	}
	out = append(out, t4)
	fm := func(loss string, withLWR bool, edit func(*config.Run)) func(*config.Run) {
		return func(c *config.Run) {
			config.ShortSchedule(c, 20)
			c.EvalEvery = c.Epochs
			c.Dataset, c.ImbalanceFactor = "fashion-mnist", 100
			setLoss(c, loss, withLWR)
			if edit != nil {
				edit(c)
			}
		}
	}
	out = append(out, Preset{Name: "fmnist", Table: true, Dir: "runs/fmnist", Seeds: []int64{0, 1, 2},
		About: "table, offline: Fashion-MNIST-LT IF 100, ResNet-32, 20 epochs: CE, BS, BS + LWR, BS + LWR without projection, BS + LWR with constant λ; seeds 0,1,2",
		Runs: []PresetRun{
			{Label: "CE", Apply: fm("ce", false, nil)},
			{Label: "BS", Apply: fm("balanced-softmax", false, nil)},
			{Label: "BS + LWR", Apply: fm("balanced-softmax", true, nil)},
			{Label: "BS + LWR, no projection", Apply: fm("balanced-softmax", true, func(c *config.Run) { c.LWRConfig.Projection = false })},
			{Label: "BS + LWR, constant λ", Apply: fm("balanced-softmax", true, func(c *config.Run) { c.LWRSchedule = config.Constant })},
		}})
	return out
}

func labelOf(part string, withLWR bool) string {
	l := strings.ToUpper(part)
	if withLWR {
		l += " + LWR"
	}
	return l
}

// FindPreset returns the named preset of presets, or an error listing
// close names.
func FindPreset(presets []Preset, name string) (Preset, error) {
	var near []string
	for _, p := range presets {
		if p.Name == name {
			return p, nil
		}
		if strings.HasPrefix(p.Name, strings.SplitN(name, "-", 2)[0]) {
			near = append(near, p.Name)
		}
	}
	if len(near) > 12 {
		near = append(near[:12], "…")
	}
	hint := "run with --list-presets to see them all"
	if len(near) > 0 {
		hint = "did you mean one of: " + strings.Join(near, ", ")
	}
	return Preset{}, fmt.Errorf("--preset %q: no such preset; %s", name, hint)
}

// ImageNetPresets are cmd/imagenet's experiments: the paper's ImageNet-LT
// rows (ResNet-50, 100 epochs) for each balanced loss with and without LWR,
// and a ResNeXt-50 row.
func ImageNetPresets() []Preset {
	var out []Preset
	for part, loss := range lossLabels {
		for _, withLWR := range []bool{false, true} {
			name := "table3-" + part
			about := "ImageNet-LT, ResNet-50, " + loss
			if withLWR {
				name += "-lwr"
				about += " + LWR"
			}
			out = append(out, Preset{Name: name, About: about, Runs: []PresetRun{{Label: labelOf(part, withLWR), Apply: imageNetRecipe(loss, withLWR)}}})
		}
	}
	out = append(out, Preset{Name: "table3-resnext50-bs-lwr", About: "ImageNet-LT, ResNeXt-50 32x4d, balanced-softmax + LWR",
		Runs: []PresetRun{{Label: "BS + LWR", Apply: func(c *config.Run) {
			imageNetRecipe("balanced-softmax", true)(c)
			c.Model = "resnext50"
		}}}})
	out = append(out, Preset{Name: "table3", Table: true, Dir: "runs/table3",
		About: "table: ImageNet-LT, ResNet-50, every balanced loss with and without LWR, × --seeds",
		Runs:  lossRows(imageNetRecipe, map[string]float64{"BS + LWR": 51.5})})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// imageNetRecipe is ImageNetConfig with the given loss.
func imageNetRecipe(loss string, withLWR bool) func(*config.Run) {
	return func(c *config.Run) { setLoss(c, loss, withLWR) }
}

// setLoss sets the loss (DRW at 80% of the epochs, IB from 50%, as the
// CIFAR recipe's 160 and 100 of 200) and LWR on or off.
func setLoss(c *config.Run, loss string, withLWR bool) {
	c.Loss = config.DefaultLoss(loss, c.Epochs)
	c.Loss.DRWEpoch, c.Loss.IBEpoch = c.Epochs*4/5, c.Epochs/2
	c.LWR = withLWR
}
