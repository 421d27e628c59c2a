package train

import (
	"math/rand"
	"testing"

	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/metrics"
	"github.com/lwr-go/lwr/pkg/tensorboard"
)

// BenchmarkEpochEvents is the cost of one evaluation epoch's events (the
// scalars and both histograms, written and synced) for the classes given,
// to set beside an epoch's seconds (BENCHMARKS.md).
func BenchmarkEpochEvents(b *testing.B) {
	for _, classes := range []int{10, 100} {
		b.Run(map[int]string{10: "classes10", 100: "classes100"}[classes], func(b *testing.B) {
			w, err := tensorboard.Create(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			rng := rand.New(rand.NewSource(1))
			ws := lwr.Stats{Norms: make([]float64, classes), Cos: make([][]float64, classes)}
			for i := range ws.Cos {
				ws.Norms[i] = rng.Float64()
				ws.Cos[i] = make([]float64, classes)
				for j := range ws.Cos[i] {
					ws.Cos[i][j] = 2*rng.Float64() - 1
				}
			}
			m := metrics.Metrics{Top1: 70, Top5: 95, Many: 80, Medium: 60, Few: 40, NLL: 1, ECE: 5}
			line := EpochLog{LR: 0.1, Lambda: 0.5, LossBal: 1, LossLWR: 2, Test: &m, Weights: &ws}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				line.Epoch = i + 1
				if err := writeEpochEvents(w, line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
