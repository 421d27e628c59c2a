// Package report draws the pictures of a training run: per-class accuracy
// and classifier-row norm against training count, the cosine matrix of the
// classifier's weight rows, the training curves and a reliability diagram;
// and of a table of runs. Each is a PNG written atomically.
package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/lwr-go/lwr/pkg/atomicfile"
)

// Curve is one epoch's values for the training curves; Top1 is NaN on
// epochs without evaluation.
type Curve struct {
	Epoch   int
	LossBal float64
	LossLWR float64 // R; 0 without LWR
	Lambda  float64 // λ(t) of R; 0 without LWR
	LR      float64
	// Top1 and the many/medium/few accuracies (%) are NaN on epochs
	// without evaluation (and a group without classes).
	Top1, Many, Medium, Few float64
}

// accuracyByCountPlot is an empty plot of accuracy (%, 0 to 100) against
// training images per class (log scale).
func accuracyByCountPlot(title, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "training images of the class (log scale)"
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 100
	return p
}

// AccuracyByCount plots each class's test accuracy (%) against its number
// of training images (log scale): the long tail's signature. Points are
// labelled with names[c] when the data set has at most 20 named classes,
// else with the class index (up to 100 classes).
func AccuracyByCount(path string, counts []int64, accuracy []float64, names []string, title string) error {
	p := accuracyByCountPlot(title, "test accuracy (%)")
	var pts plotter.XYs
	for c, n := range counts {
		if c < len(accuracy) && accuracy[c] == accuracy[c] && n > 0 {
			pts = append(pts, plotter.XY{X: float64(n), Y: accuracy[c]})
		}
	}
	if len(pts) == 0 {
		return fmt.Errorf("plot %s: no class with an accuracy", path)
	}
	s, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	s.GlyphStyle.Radius = vg.Points(3)
	s.GlyphStyle.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	p.Add(plotter.NewGrid())
	// The shot groups: few < 20 ≤ medium ≤ 100 < many training images.
	lo, hi := pts[0].X, pts[0].X
	for _, pt := range pts {
		lo, hi = math.Min(lo, pt.X), math.Max(hi, pt.X)
	}
	var bands plotter.XYLabels
	for _, b := range []struct {
		at   float64
		name string
	}{{20, "few | medium"}, {100.5, "medium | many"}} {
		if b.at <= lo || b.at >= hi {
			continue
		}
		line, err := marker(b.at, 100)
		if err != nil {
			return err
		}
		p.Add(line)
		bands.XYs = append(bands.XYs, plotter.XY{X: b.at, Y: 97})
		bands.Labels = append(bands.Labels, b.name)
	}
	if len(bands.XYs) > 0 {
		l, err := plotter.NewLabels(bands)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Color = grey
			l.TextStyle[i].XAlign = -0.5
		}
		p.Add(l)
	}
	// Each point named by its class.
	var labels plotter.XYLabels
	for c, n := range counts {
		if c < len(accuracy) && accuracy[c] == accuracy[c] && n > 0 {
			labels.XYs = append(labels.XYs, plotter.XY{X: float64(n), Y: accuracy[c]})
			labels.Labels = append(labels.Labels, className(names, c, 20))
		}
	}
	p.Add(s)
	if len(labels.XYs) <= 100 {
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = 0.4, 0.3
		}
		p.Add(l)
	}
	return save(p, path, 6*vg.Inch, 4*vg.Inch)
}

// cosGrid is a C×C matrix as plotter.GridXYZ; row 0 (class 0, the head)
// is drawn at the top.
type cosGrid [][]float64

func (g cosGrid) Dims() (int, int) { return len(g), len(g) }

// Z clamps to [-1, 1]: a cosine of 1+ε would fall off the palette.
func (g cosGrid) Z(c, r int) float64 { return math.Max(-1, math.Min(1, g[len(g)-1-r][c])) }
func (g cosGrid) X(c int) float64    { return float64(c) }
func (g cosGrid) Y(r int) float64    { return float64(r) }

// CosineMatrix draws cos(w_i, w_j) of the classifier rows, classes in
// index order (head first), on a blue (-1) to red (+1) scale; with at most
// 20 classes their names (names, or the index where names is nil) label
// the axes.
func CosineMatrix(path string, cos [][]float64, names []string, title string) error {
	if len(cos) < 2 {
		return fmt.Errorf("plot %s: want at least 2 classes", path)
	}
	pal := moreland.SmoothBlueRed()
	pal.SetMin(-1)
	pal.SetMax(1)
	h := plotter.NewHeatMap(cosGrid(cos), pal.Palette(255))
	h.Min, h.Max = -1, 1
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "class j"
	p.Y.Label.Text = "class i (top: 0, the head)"
	p.Add(h)
	w := 5 * vg.Inch
	if c := len(cos); c > 20 {
		p.HideAxes()
	} else {
		classTicks(p, c, names)
		w = 6 * vg.Inch
	}
	bar := plot.New()
	bar.Title.Text = "cos"
	bar.HideX()
	bar.Add(&plotter.ColorBar{ColorMap: pal, Vertical: true})
	return saveBeside(p, bar, path, w, 0.9*vg.Inch, w)
}

// saveBeside draws main and, to its right, side (a colour bar) on one PNG
// of width w + sideW and height h.
func saveBeside(main, side *plot.Plot, path string, w, sideW, h vg.Length) error {
	c := vgimg.New(w+sideW, h)
	dc := draw.New(c)
	main.Draw(draw.Crop(dc, 0, -sideW, 0, 0))
	side.Draw(draw.Crop(dc, w, 0, vg.Points(20), -vg.Points(30)))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// Curves draws a run's training in three panels over the epochs: the
// losses (balanced loss, and with LWR R and λ(t)); top-1 and many/medium/
// few (%) at the evaluations; the learning rate.
func Curves(path string, curves []Curve, title string) error {
	if len(curves) == 0 {
		return fmt.Errorf("plot %s: no epochs", path)
	}
	series := func(f func(Curve) float64) plotter.XYs {
		var pts plotter.XYs
		for _, c := range curves {
			if v := f(c); !math.IsNaN(v) && !math.IsInf(v, 0) {
				pts = append(pts, plotter.XY{X: float64(c.Epoch), Y: v})
			}
		}
		return pts
	}
	first, last := float64(curves[0].Epoch), float64(curves[len(curves)-1].Epoch)
	panel := func(title, y string) *plot.Plot {
		p := plot.New()
		p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, "epoch", y
		p.X.Min, p.X.Max = first-0.5, last+0.5 // one epoch range for the three
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, false
		return p
	}
	add := func(p *plot.Plot, name string, pts plotter.XYs, k int, dashed bool) error {
		if len(pts) == 0 {
			return nil
		}
		l, dots, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = palette[k], vg.Points(1.5)
		dots.Color, dots.Radius = palette[k], vg.Points(2)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		if len(pts) > 30 { // dots only where they can be told apart
			p.Add(l)
			p.Legend.Add(name, l)
		} else {
			p.Add(l, dots)
			p.Legend.Add(name, l, dots)
		}
		return nil
	}
	losses := panel(title, "loss (λ: weight of R)")
	lwr := false
	for _, c := range curves {
		lwr = lwr || c.LossLWR != 0 || c.Lambda != 0
	}
	accuracy := panel("test accuracy at the evaluations", "%")
	lr := panel("learning rate", "lr")
	var err error
	for _, a := range []struct {
		p      *plot.Plot
		name   string
		f      func(Curve) float64
		k      int
		dashed bool
		skip   bool
	}{
		{losses, "balanced loss", func(c Curve) float64 { return c.LossBal }, 0, false, false},
		{losses, "R (LWR)", func(c Curve) float64 { return c.LossLWR }, 3, false, !lwr},
		{losses, "λ(t)", func(c Curve) float64 { return c.Lambda }, 7, true, !lwr},
		{accuracy, "top-1", func(c Curve) float64 { return c.Top1 }, 0, false, false},
		{accuracy, "many", func(c Curve) float64 { return c.Many }, 2, true, false},
		{accuracy, "medium", func(c Curve) float64 { return c.Medium }, 1, true, false},
		{accuracy, "few", func(c Curve) float64 { return c.Few }, 3, true, false},
		{lr, "lr", func(c Curve) float64 { return c.LR }, 4, false, false},
	} {
		if err == nil && !a.skip {
			err = add(a.p, a.name, series(a.f), a.k, a.dashed)
		}
	}
	if err != nil {
		return err
	}
	accuracy.Y.Min, accuracy.Y.Max = 0, 100
	return saveStacked([]*plot.Plot{losses, accuracy, lr}, []vg.Length{3.2 * vg.Inch, 3.2 * vg.Inch, 2 * vg.Inch}, path, 7*vg.Inch)
}

// saveStacked draws plots one above the other, of the given heights, on
// one PNG of width w.
func saveStacked(plots []*plot.Plot, heights []vg.Length, path string, w vg.Length) error {
	var total vg.Length
	for _, h := range heights {
		total += h
	}
	c := vgimg.New(w, total)
	dc := draw.New(c)
	top := total
	for i, p := range plots {
		bottom := top - heights[i]
		p.Draw(draw.Crop(dc, 0, 0, bottom, -(total - top)))
		top = bottom
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// Bin is one confidence bin of a reliability diagram: the images whose
// top-1 probability fell in [Lo, Hi), their mean confidence and their
// accuracy (fractions).
type Bin struct {
	Lo, Hi     float64
	Count      int
	Confidence float64
	Accuracy   float64
}

// Reliability draws a reliability diagram: each confidence bin's accuracy
// as a bar against the diagonal of perfect calibration, the gap to its
// mean confidence shaded, and the ECE (%) in the title.
func Reliability(path string, bins []Bin, ece float64, title string) error {
	var n int
	for _, b := range bins {
		n += b.Count
	}
	if n == 0 {
		return fmt.Errorf("plot %s: no finite outputs", path)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: ECE %.2f%%", title, ece)
	p.X.Label.Text, p.Y.Label.Text = "confidence (top-1 probability)", "accuracy"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	for _, b := range bins {
		if b.Count == 0 {
			continue
		}
		bar := func(lo, hi float64, col color.Color, fill bool) error {
			pts := plotter.XYs{{X: b.Lo, Y: lo}, {X: b.Hi, Y: lo}, {X: b.Hi, Y: hi}, {X: b.Lo, Y: hi}}
			poly, err := plotter.NewPolygon(pts)
			if err != nil {
				return err
			}
			poly.Color = nil
			if fill {
				poly.Color = col
			}
			poly.LineStyle.Color, poly.LineStyle.Width = palette[0], vg.Points(0.8)
			p.Add(poly)
			return nil
		}
		if err := bar(0, b.Accuracy, color.RGBA{R: 31, G: 119, B: 180, A: 200}, true); err != nil {
			return err
		}
		lo, hi := math.Min(b.Accuracy, b.Confidence), math.Max(b.Accuracy, b.Confidence)
		if err := bar(lo, hi, color.RGBA{R: 214, G: 39, B: 40, A: 90}, true); err != nil {
			return err
		}
	}
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return err
	}
	diag.Color, diag.Dashes = grey, []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(diag)
	p.Legend.Add("perfect calibration", diag)
	p.Legend.Top, p.Legend.Left = true, true
	return save(p, path, 5*vg.Inch, 5*vg.Inch)
}

func save(p *plot.Plot, path string, w, h vg.Length) error {
	wt, err := p.WriterTo(w, h, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// unitGrid is a C×C matrix of values in [0, 1] as plotter.GridXYZ; row 0
// is drawn at the top.
type unitGrid [][]float64

func (g unitGrid) Dims() (int, int)   { return len(g), len(g) }
func (g unitGrid) Z(c, r int) float64 { return math.Max(0, math.Min(1, g[len(g)-1-r][c])) }
func (g unitGrid) X(c int) float64    { return float64(c) }
func (g unitGrid) Y(r int) float64    { return float64(r) }

// className is names[c] when names has one for every class and there are
// at most most of them, else c's index.
func className(names []string, c, most int) string {
	if c < len(names) && len(names) <= most {
		return names[c]
	}
	return fmt.Sprint(c)
}

// ConfusionMatrix draws a confusion matrix with each true class's row
// normalised to fractions in [0, 1] (white 0 to red 1), classes in index
// order (head first); with at most 20 classes their names (names, or the
// index where names is nil) label the axes.
func ConfusionMatrix(path string, counts [][]int, names []string, title string) error {
	if len(counts) < 2 {
		return fmt.Errorf("plot %s: want at least 2 classes", path)
	}
	frac := make([][]float64, len(counts))
	for i, row := range counts {
		frac[i] = make([]float64, len(row))
		var n int
		for _, v := range row {
			n += v
		}
		for j, v := range row {
			if n > 0 {
				frac[i][j] = float64(v) / float64(n)
			}
		}
	}
	pal := moreland.SmoothBlueRed()
	pal.SetMin(-1)
	pal.SetMax(1)
	h := plotter.NewHeatMap(unitGrid(frac), pal.Palette(255))
	h.Min, h.Max = -1, 1 // the red half: 0 white, 1 red
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "predicted class"
	p.Y.Label.Text = "true class (top: 0, the head)"
	p.Add(h)
	c := len(counts)
	if c > 20 {
		p.HideAxes()
		return save(p, path, 5*vg.Inch, 5*vg.Inch)
	}
	classTicks(p, c, names)
	return save(p, path, 6*vg.Inch, 6*vg.Inch)
}

// classTicks labels a c×c matrix's axes with the class names (row 0 at
// the top).
func classTicks(p *plot.Plot, c int, names []string) {
	var xt, yt []plot.Tick
	for k := 0; k < c; k++ {
		xt = append(xt, plot.Tick{Value: float64(k), Label: className(names, k, 20)})
		yt = append(yt, plot.Tick{Value: float64(c - 1 - k), Label: className(names, k, 20)})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(xt), plot.ConstantTicks(yt)
	p.X.Tick.Label.Rotation, p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = math.Pi/4, draw.XRight, draw.YCenter
	p.X.Padding, p.Y.Padding = 0, 0
}

// TableBars draws a table's rows as groups of bars — top-1, many, medium,
// few (%), each the mean over seeds with ±1 standard deviation as error
// bars. means and stds are [row][4]; NaN values (a group without classes)
// are drawn as 0 without error bar.
func TableBars(path string, rows []string, means, stds [][4]float64, title string) error {
	if len(rows) == 0 {
		return fmt.Errorf("plot %s: no rows", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "accuracy (%), mean ± std over seeds"
	p.Y.Min, p.Y.Max = 0, 100
	names := [4]string{"top-1", "many", "medium", "few"}
	shades := [4]color.Color{color.RGBA{40, 40, 40, 255}, color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{214, 39, 40, 255}}
	w := vg.Points(60 / float64(4))
	for k := 0; k < 4; k++ {
		vals := make(plotter.Values, len(rows))
		errs := make(plotter.YErrors, len(rows))
		pts := make(plotter.XYs, len(rows))
		for i := range rows {
			m, s := means[i][k], stds[i][k]
			if math.IsNaN(m) {
				m, s = 0, 0
			}
			if math.IsNaN(s) {
				s = 0
			}
			vals[i] = m
			errs[i].Low, errs[i].High = s, s
			pts[i].X, pts[i].Y = float64(i), m
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.Color = shades[k]
		bars.LineStyle.Width = 0
		bars.XMin = (float64(k) - 1.5) * 0.2 // the group's bars side by side, in data units
		p.Add(bars)
		p.Legend.Add(names[k], bars)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return err
		}
		for i := range eb.XYs { // centred on their bars
			eb.XYs[i].X += bars.XMin
		}
		p.Add(eb)
	}
	p.NominalX(rows...)
	p.Legend.Top = true
	return save(p, path, vg.Length(max(6, 1.8*float64(len(rows))))*vg.Inch, 4*vg.Inch)
}

// Series is one row of a comparison: per-class means and standard
// deviations (NaN where undefined), in class order.
type Series struct {
	Label     string
	Mean, Std []float64
}

// CompareByCount draws every row's per-class test accuracy (%) against the
// classes' training counts (log scale): a line through the means with the
// spread over seeds (±1 std) as error bars, the few/medium/many boundaries
// marked.
func CompareByCount(path string, counts []int64, rows []Series, title string) error {
	return byCount(path, counts, rows, title, "test accuracy (%), mean ± std over seeds", 100)
}

// NormsByCount draws each class's classifier-row norm ‖w_c‖ against its
// training count (log scale), a line per row (a run, or a table's row as
// mean ± std over seeds): what the decoupling literature plots, and what
// LWR changes.
func NormsByCount(path string, counts []int64, rows []Series, title string) error {
	top := 0.0
	for _, r := range rows {
		for c, m := range r.Mean {
			sd := 0.0
			if c < len(r.Std) && !math.IsNaN(r.Std[c]) {
				sd = r.Std[c]
			}
			if !math.IsNaN(m) {
				top = math.Max(top, m+sd)
			}
		}
	}
	return byCount(path, counts, rows, title, "norm of the classifier row w_c", 1.1*top)
}

// byCount draws rows' per-class values (0 to top) against the classes'
// training counts; see CompareByCount.
func byCount(path string, counts []int64, rows []Series, title, yLabel string, top float64) error {
	if len(rows) == 0 || len(counts) == 0 || !(top > 0) {
		return fmt.Errorf("plot %s: nothing to compare", path)
	}
	order := make([]int, len(counts)) // classes by training count
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return counts[order[a]] < counts[order[b]] })
	p := accuracyByCountPlot(title, yLabel)
	p.Y.Max = top
	p.Add(plotter.NewGrid())
	for k, r := range rows {
		col := palette[k%len(palette)]
		var line plotter.XYs
		var errs plotter.YErrors
		// Rows side by side around each count (a few percent apart on the
		// log axis), so that their error bars do not cover each other.
		shift := math.Pow(1.03, float64(k)-float64(len(rows)-1)/2)
		for _, c := range order {
			if c >= len(r.Mean) || math.IsNaN(r.Mean[c]) || counts[c] <= 0 {
				continue
			}
			sd := 0.0
			if c < len(r.Std) && !math.IsNaN(r.Std[c]) {
				sd = r.Std[c]
			}
			line = append(line, plotter.XY{X: float64(counts[c]) * shift, Y: r.Mean[c]})
			errs = append(errs, struct{ Low, High float64 }{sd, sd})
		}
		if len(line) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(line)
		if err != nil {
			return err
		}
		l.Color, l.Width = col, vg.Points(1.5)
		pts.Color, pts.Radius = col, vg.Points(2)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{line, errs})
		if err != nil {
			return err
		}
		eb.Color = col
		p.Add(l, pts, eb)
		p.Legend.Add(r.Label, l, pts)
	}
	for _, at := range []float64{20, 100.5} {
		if float64(counts[order[0]]) < at && at < float64(counts[order[len(order)-1]]) {
			b, err := marker(at, top)
			if err != nil {
				return err
			}
			p.Add(b)
		}
	}
	p.Legend.Top, p.Legend.Left = false, false
	return save(p, path, 7*vg.Inch, 4.5*vg.Inch)
}

// palette is matplotlib's default colour cycle (its first eight): one
// colour per row of a comparison.
var palette = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}}

// grey draws reference marks and their labels.
var grey = color.RGBA{R: 150, G: 150, B: 150, A: 255}

// marker is a dashed grey vertical line at x from 0 to top: a reference
// value on a plot (a shot-group bound, θ).
func marker(x, top float64) (*plotter.Line, error) {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
	if err != nil {
		return nil, err
	}
	l.Color, l.Dashes = grey, []vg.Length{vg.Points(4), vg.Points(3)}
	return l, nil
}

// CosineBins is the number of equal bins over [-1, 1] of a Distribution.
const CosineBins = 40

// Distribution is one row's distribution of the pairwise cosines
// cos(w_i, w_j), i < j, of its classifier rows: the fraction of pairs in
// each of CosineBins bins over [-1, 1], averaged over seeds, and the mean
// cosine over seeds.
type Distribution struct {
	Label string
	Frac  []float64
	Mean  float64
}

// CosineHistogram bins the pairs i < j of the C×C cosine matrix cos into
// CosineBins bins over [-1, 1] and returns the fraction in each.
func CosineHistogram(cos [][]float64) []float64 {
	h := make([]float64, CosineBins)
	var n float64
	for i := range cos {
		for j := i + 1; j < len(cos[i]); j++ {
			v := cos[i][j]
			if math.IsNaN(v) {
				continue
			}
			b := int((math.Max(-1, math.Min(1, v)) + 1) / 2 * CosineBins)
			h[min(b, CosineBins-1)]++
			n++
		}
	}
	for b := range h {
		if n > 0 {
			h[b] /= n
		}
	}
	return h
}

// CosineDistributions draws each row's distribution of classifier-row
// cosines as a step line (fraction of pairs per bin), θ marked: what LWR is
// meant to change (pairs above θ pushed apart).
func CosineDistributions(path string, rows []Distribution, theta float64, title string) error {
	if len(rows) == 0 {
		return fmt.Errorf("plot %s: no rows", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "cos(w_i, w_j) of classifier rows, pairs i < j"
	p.Y.Label.Text = "fraction of pairs, mean over seeds"
	p.X.Min, p.X.Max = -1, 1
	p.Add(plotter.NewGrid())
	top := 0.0
	for k, r := range rows {
		if len(r.Frac) != CosineBins {
			return fmt.Errorf("plot %s: row %q has %d bins, want %d", path, r.Label, len(r.Frac), CosineBins)
		}
		var pts plotter.XYs
		for b, f := range r.Frac {
			lo := -1 + 2*float64(b)/CosineBins
			pts = append(pts, plotter.XY{X: lo, Y: f}, plotter.XY{X: lo + 2.0/CosineBins, Y: f})
			top = math.Max(top, f)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = palette[k%len(palette)], vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (mean %.3f)", r.Label, r.Mean), l)
	}
	p.Y.Min, p.Y.Max = 0, math.Max(top*1.1, 0.01)
	th, err := marker(theta, p.Y.Max)
	if err != nil {
		return err
	}
	p.Add(th)
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: theta, Y: p.Y.Max * 0.97}}, Labels: []string{fmt.Sprintf(" θ = %g", theta)}})
	if err != nil {
		return err
	}
	lab.TextStyle[0].Color = grey
	p.Add(lab)
	p.Legend.Top, p.Legend.Left = true, true
	return save(p, path, 7*vg.Inch, 4.5*vg.Inch)
}
