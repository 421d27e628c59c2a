package data

import (
	"slices"
	"testing"
)

func TestClassNames(t *testing.T) {
	for _, c := range []struct {
		dataset string
		n       int
		first   string
	}{{"fashion-mnist", 10, "T-shirt/top"}, {"cifar10", 10, "airplane"}, {"cifar100", 100, "apple"}, {"synthetic", 0, ""}, {"imagenet-lt", 0, ""}} {
		names := ClassNames(c.dataset)
		if len(names) != c.n || (c.n > 0 && names[0] != c.first) {
			t.Errorf("%s: %d names starting %v, want %d starting %q", c.dataset, len(names), names, c.n, c.first)
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				t.Errorf("%s: %q twice", c.dataset, n)
			}
			seen[n] = true
		}
	}
	// CIFAR-100's fine labels are numbered in alphabetical order.
	if n := ClassNames("cifar100"); !slices.IsSorted(n) {
		t.Error("cifar100: names not in label (alphabetical) order")
	}
}
