package config

// Loss holds every balanced loss's hyper-parameters; each loss reads its
// own (pkg/losses).
type Loss struct {
	Name      string  // one of losses.Names()
	Tau       float64 // Logit Adjustment temperature τ (1: same as Balanced Softmax)
	MaxMargin float64 // LDAM largest margin, given to the rarest class (0.5 in LDAM-DRW)
	Scale     float64 // LDAM logit scale s (30 in LDAM-DRW)
	Gamma     float64 // Focal exponent γ (1 in the IB-Focal recipe; 0 is CE)
	Beta      float64 // Class-Balanced β of the effective number (1-β^n)/(1-β) (0.9999)
	DRWEpoch  int     // epoch from which DRW losses re-weight (160 of 200 in LDAM-DRW)
	IBAlpha   float64 // IB loss α (1000 in IB-Loss)
	IBEpsilon float64 // IB loss ε in α/(g·h + ε) (0.001 in IB-Loss)
	IBEpoch   int     // epoch from which IB replaces CE (100 of 200 in IB-Loss)
}

// DefaultLoss is the reference recipes' settings for a run of the given
// number of epochs: DRW from 80% of the run (160 of 200), IB from half.
func DefaultLoss(name string, epochs int) Loss {
	return Loss{
		Name:      name,
		Tau:       1,
		MaxMargin: 0.5,
		Scale:     30,
		Gamma:     1,
		Beta:      0.9999,
		DRWEpoch:  epochs * 4 / 5,
		IBAlpha:   1000,
		IBEpsilon: 0.001,
		IBEpoch:   epochs / 2,
	}
}
