package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/regularfile"
	"github.com/lwr-go/lwr/pkg/report"
)

// SeedDir is the folder of seed k of a table row: ROW/seedK.
func SeedDir(row string, seed int64) string {
	return filepath.Join(row, "seed"+strconv.FormatInt(seed, 10))
}

// RowName is RunName without the seed: a table row's folder, which holds
// one folder per seed.
func RowName(c config.Run) string {
	c.Seed = 0
	return RunName(c)
}

// Stat is a mean over seeds: mean ± std (sample standard deviation, n−1;
// 0 for one seed) of the seeds whose value is defined, and their number.
type Stat struct {
	Mean, Std float64
	N         int
}

// statOf summarises vs, leaving NaN (undefined) values out.
func statOf(vs []float64) Stat {
	var s Stat
	for _, v := range vs {
		if !math.IsNaN(v) {
			s.Mean += v
			s.N++
		}
	}
	if s.N == 0 {
		return Stat{Mean: math.NaN(), Std: math.NaN()}
	}
	s.Mean /= float64(s.N)
	if s.N > 1 {
		for _, v := range vs {
			if !math.IsNaN(v) {
				s.Std += (v - s.Mean) * (v - s.Mean)
			}
		}
		s.Std = math.Sqrt(s.Std / float64(s.N-1))
	}
	return s
}

// String is "mean ± std", the mean alone for one seed (no spread was
// measured), "-" when undefined.
func (s Stat) String() string {
	if math.IsNaN(s.Mean) {
		return "-"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f", s.Mean)
	}
	return fmt.Sprintf("%.2f ± %.2f", s.Mean, s.Std)
}

// RowResult aggregates one row's finished seeds.
type RowResult struct {
	Label                   string
	Dir                     string // the row's folder
	Seeds                   []int64
	Top1, Many, Medium, Few Stat
	ECE                     Stat
	Paper                   float64  // the paper's top-1; NaN if it gives none
	Failed                  []string // seeds that failed, "seedK: why"
	Missing                 []int64  // seeds without a summary.json (not run, or stopped)
	PerClass                []Stat   // each class's accuracy over the seeds
	Norms                   []Stat   // each class's final classifier-row norm over the seeds
	Counts                  []int64  // training images per class (from the runs)
	// CosFrac is the distribution of the final classifier's pairwise row
	// cosines (report.CosineHistogram), averaged over the seeds whose
	// checkpoint could be read; CosMean their mean cosine (over pairs i ≠ j).
	CosFrac []float64
	CosMean Stat
}

// Row is a table row to report: its label, folder, seeds and the paper's
// top-1 (NaN if none).
type Row struct {
	Label string
	Dir   string
	Seeds []int64
	Paper float64
}

// CheckpointStats reads the statistics of the classifier rows of the
// checkpoint ckpt, with θ theta (train.ClassifierStats, which needs
// libtorch: this package does not).
type CheckpointStats func(ckpt string, theta float64) (metrics.ClassifierStats, error)

// cosines is the distribution of a run's final classifier-row cosines and
// their mean: from its summary, or for a run whose summary predates them,
// from its checkpoint in dir through fromCheckpoint (nil: not read). ok is
// false when neither has them.
func cosines(s config.Summary, dir string, fromCheckpoint CheckpointStats) (hist []float64, mean float64, ok bool) {
	if s.Classifier != nil && len(s.CosineHistogram) == report.CosineBins {
		return s.CosineHistogram, s.Classifier.CosMean, true
	}
	if fromCheckpoint == nil {
		return nil, 0, false
	}
	ws, err := fromCheckpoint(filepath.Join(dir, config.CheckpointFile), s.Config.LWRConfig.Theta)
	if err != nil {
		return nil, 0, false
	}
	return report.CosineHistogram(ws.Cos), ws.CosMean, true
}

// Collect reads the summary.json of every seed of every row. Failed maps a
// seed folder to why its run failed (from this invocation); a seed with
// neither is counted missing. fromCheckpoint reads the classifier of runs
// whose summary predates its statistics (nil: such runs have none).
func Collect(rows []Row, failed map[string]string, fromCheckpoint CheckpointStats) ([]RowResult, error) {
	var out []RowResult
	for _, r := range rows {
		res := RowResult{Label: r.Label, Dir: r.Dir, Paper: r.Paper}
		var top1, many, medium, few, ece []float64
		var perClass, norms [][]float64
		var cosMean []float64
		for _, seed := range r.Seeds {
			dir := SeedDir(r.Dir, seed)
			if why, ok := failed[dir]; ok {
				res.Failed = append(res.Failed, fmt.Sprintf("seed%d: %s", seed, why))
				continue
			}
			b, err := regularfile.ReadFile(filepath.Join(dir, config.SummaryFile), config.MaxJSONBytes, "summary files")
			if errors.Is(err, os.ErrNotExist) {
				res.Missing = append(res.Missing, seed)
				continue
			}
			if err != nil {
				return nil, err
			}
			var s config.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, config.SummaryFile), err)
			}
			res.Seeds = append(res.Seeds, seed)
			res.Counts = s.TrainCounts
			for c, v := range s.Final.PerClass {
				perClass = appendAt(perClass, c, float64(v))
			}
			if s.Classifier != nil {
				for c, v := range s.Classifier.Norms {
					norms = appendAt(norms, c, v)
				}
			}
			top1 = append(top1, float64(s.Final.Top1))
			many = append(many, float64(s.Final.Many))
			medium = append(medium, float64(s.Final.Medium))
			few = append(few, float64(s.Final.Few))
			ece = append(ece, float64(s.Final.ECE))
			if h, mean, ok := cosines(s, dir, fromCheckpoint); ok {
				if res.CosFrac == nil {
					res.CosFrac = make([]float64, len(h))
				}
				for b, f := range h {
					res.CosFrac[b] += f
				}
				cosMean = append(cosMean, mean)
			}
		}
		for b := range res.CosFrac {
			res.CosFrac[b] /= float64(len(cosMean))
		}
		res.CosMean = statOf(cosMean)
		res.Top1, res.Many, res.Medium, res.Few, res.ECE = statOf(top1), statOf(many), statOf(medium), statOf(few), statOf(ece)
		for _, vs := range perClass {
			res.PerClass = append(res.PerClass, statOf(vs))
		}
		for _, vs := range norms {
			res.Norms = append(res.Norms, statOf(vs))
		}
		out = append(out, res)
	}
	return out, nil
}

// WriteReport writes table.md and table.csv into dir (atomically): one
// line per row with mean ± std and n over seeds of top-1, many, medium,
// few and ECE, and the paper's top-1 beside ours with the difference;
// table.png, those accuracies as bars with error bars; by_count.png and
// norms_by_count.png, every row's per-class accuracy and classifier-row
// norm against the training counts.
func WriteReport(dir, title string, rows []RowResult) error {
	var md, csv strings.Builder
	fmt.Fprintf(&md, "# %s\n\nmean ± std over seeds (n seeds); accuracy in %%, ECE in %% (15 bins); paper: the published top-1.\n\n", title)
	md.WriteString("| row | n | top-1 | many | medium | few | ECE | paper | ours − paper |\n|---|---|---|---|---|---|---|---|---|\n")
	csv.WriteString("row,n,top1_mean,top1_std,many_mean,many_std,medium_mean,medium_std,few_mean,few_std,ece_mean,ece_std,paper_top1,diff_top1,failed,missing\n")
	num := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, r := range rows {
		paper, diff := "-", "-"
		if !math.IsNaN(r.Paper) {
			paper = fmt.Sprintf("%.1f", r.Paper)
			if !math.IsNaN(r.Top1.Mean) {
				diff = fmt.Sprintf("%+.2f", r.Top1.Mean-r.Paper)
			}
		}
		note := ""
		if len(r.Failed) > 0 {
			note = fmt.Sprintf(" (%d failed)", len(r.Failed))
		}
		if len(r.Missing) > 0 {
			note += fmt.Sprintf(" (%d missing)", len(r.Missing))
		}
		fmt.Fprintf(&md, "| %s%s | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.Label, note, r.Top1.N,
			r.Top1, r.Many, r.Medium, r.Few, r.ECE, paper, diff)
		d := math.NaN()
		if !math.IsNaN(r.Paper) {
			d = r.Top1.Mean - r.Paper
		}
		fmt.Fprintf(&csv, "%s,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d,%d\n", csvField(r.Label), r.Top1.N,
			num(r.Top1.Mean), num(r.Top1.Std), num(r.Many.Mean), num(r.Many.Std), num(r.Medium.Mean), num(r.Medium.Std),
			num(r.Few.Mean), num(r.Few.Std), num(r.ECE.Mean), num(r.ECE.Std), num(r.Paper), num(d), len(r.Failed), len(r.Missing))
	}
	var failures []string
	for _, r := range rows {
		for _, f := range r.Failed {
			failures = append(failures, fmt.Sprintf("- %s %s", r.Label, f))
		}
	}
	sort.Strings(failures)
	if len(failures) > 0 {
		md.WriteString("\nFailed runs:\n\n" + strings.Join(failures, "\n") + "\n")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "table.md"), []byte(md.String())); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "table.csv"), []byte(csv.String())); err != nil {
		return err
	}
	labels := make([]string, len(rows))
	means, stds := make([][4]float64, len(rows)), make([][4]float64, len(rows))
	for i, r := range rows {
		labels[i] = r.Label
		for k, st := range []Stat{r.Top1, r.Many, r.Medium, r.Few} {
			means[i][k], stds[i][k] = st.Mean, st.Std
		}
	}
	if err := report.TableBars(filepath.Join(dir, "table.png"), labels, means, stds, title+": mean ± std over seeds"); err != nil {
		return err
	}
	// Every row's per-class accuracy, and classifier-row norm, against the
	// training counts.
	for _, by := range []struct {
		file, what string
		of         func(RowResult) []Stat
		draw       func(path string, counts []int64, rows []report.Series, title string) error
	}{
		{"by_count.png", "per-class accuracy by training count", func(r RowResult) []Stat { return r.PerClass }, report.CompareByCount},
		{"norms_by_count.png", "classifier row norms by training count", func(r RowResult) []Stat { return r.Norms }, report.NormsByCount},
	} {
		var counts []int64
		var series []report.Series
		for _, r := range rows {
			if len(by.of(r)) == 0 {
				continue
			}
			counts = r.Counts
			sr := report.Series{Label: r.Label}
			for _, st := range by.of(r) {
				sr.Mean, sr.Std = append(sr.Mean, st.Mean), append(sr.Std, st.Std)
			}
			series = append(series, sr)
		}
		if len(series) > 0 && len(counts) > 0 {
			if err := by.draw(filepath.Join(dir, by.file), counts, series, title+": "+by.what); err != nil {
				return err
			}
		}
	}
	// Every row's classifier-row cosines: what LWR is meant to change.
	var dists []report.Distribution
	for _, r := range rows {
		if r.CosFrac != nil {
			dists = append(dists, report.Distribution{Label: r.Label, Frac: r.CosFrac, Mean: r.CosMean.Mean})
		}
	}
	if len(dists) == 0 {
		return nil
	}
	return report.CosineDistributions(filepath.Join(dir, "cosines.png"), dists, config.DefaultLWR().Theta,
		title+": classifier-row cosines, final weights")
}

// csvField quotes s when it holds a comma or a quote.
func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// appendAt appends v to the values of class c in perClass (one list per
// class, grown as classes appear) and returns perClass.
func appendAt(perClass [][]float64, c int, v float64) [][]float64 {
	for c >= len(perClass) {
		perClass = append(perClass, nil)
	}
	perClass[c] = append(perClass[c], v)
	return perClass
}
