package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Sampler orders the training images of an epoch.
type Sampler string

const (
	InstanceBalanced Sampler = "instance" // each image once, shuffled (the default)
	ClassBalanced    Sampler = "class"    // a class uniformly, then an image of it
	SquareRoot       Sampler = "sqrt"     // a class with probability ∝ √n_c, then an image of it
)

// Order returns the N indices of an epoch, drawn from r.
func (s Sampler) Order(labels []int64, classes int, r *rand.Rand) ([]int64, error) {
	n := len(labels)
	switch s {
	case InstanceBalanced, "":
		out := make([]int64, n)
		for i, j := range r.Perm(n) {
			out[i] = int64(j)
		}
		return out, nil
	case ClassBalanced, SquareRoot:
		byClass := make([][]int64, classes)
		for i, y := range labels {
			byClass[y] = append(byClass[y], int64(i))
		}
		weights := make([]float64, classes)
		var total float64
		for c, idx := range byClass {
			if len(idx) == 0 {
				continue
			}
			weights[c] = 1
			if s == SquareRoot {
				weights[c] = math.Sqrt(float64(len(idx)))
			}
			total += weights[c]
		}
		out := make([]int64, n)
		for i := range out {
			u := r.Float64() * total
			c := 0
			for ; c < classes-1; c++ {
				if u < weights[c] {
					break
				}
				u -= weights[c]
			}
			for len(byClass[c]) == 0 { // u landed on an empty class through rounding
				c = (c + 1) % classes
			}
			out[i] = byClass[c][r.IntN(len(byClass[c]))]
		}
		return out, nil
	}
	return nil, fmt.Errorf("sampler %q: want instance, class or sqrt", s)
}
