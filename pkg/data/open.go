package data

import (
	"fmt"
	"os"
)

// Open loads the long-tailed training subset of the named data set and its
// whole test set, and the subset's indices into the full training set (nil
// for synthetic data):
//   - fashion-mnist: Debian's files in dir, else $FASHION_MNIST_DIR, else
//     DefaultFashionMNISTDir; n_max 600;
//   - cifar10, cifar100: the binary versions under dir (default ./data);
//     n_max 5,000 and 500;
//   - synthetic: a CIFAR-shaped set of 10 classes, n_max 100, drawn from seed.
//
// The subset keeps n_c = n_max·(1/imbalance)^(c/(C−1)) images of class c,
// drawn as the reference code does with NumPy's RandomState(subsetSeed).
func Open(name, dir string, imbalance float64, subsetSeed uint32, seed int64) (train, test *Dataset, subset []int64, err error) {
	switch name {
	case "fashion-mnist":
		if dir == "" {
			dir = os.Getenv("FASHION_MNIST_DIR")
		}
		if dir == "" {
			dir = DefaultFashionMNISTDir
		}
		if train, err = LoadFashionMNIST(dir, true); err != nil {
			return nil, nil, nil, fmt.Errorf("%w (install Debian's dataset-fashion-mnist or pass --data-dir)", err)
		}
		if test, err = LoadFashionMNIST(dir, false); err != nil {
			return nil, nil, nil, err
		}
		return longTail(train, test, 600, imbalance, subsetSeed)
	case "cifar10", "cifar100":
		classes := 10
		if name == "cifar100" {
			classes = 100
		}
		if dir == "" {
			dir = "data"
		}
		if train, err = LoadCIFAR(dir, classes, true); err != nil {
			return nil, nil, nil, err
		}
		if test, err = LoadCIFAR(dir, classes, false); err != nil {
			return nil, nil, nil, err
		}
		return longTail(train, test, train.Len()/classes, imbalance, subsetSeed)
	case "synthetic":
		counts, err := LongTailCounts(10, 100, imbalance)
		if err != nil {
			return nil, nil, nil, err
		}
		testCounts := make([]int, 10)
		for i := range testCounts {
			testCounts[i] = 20
		}
		return Synthetic(counts, uint64(seed)+1), Synthetic(testCounts, uint64(seed)+2), nil, nil
	}
	return nil, nil, nil, fmt.Errorf("--dataset %q: want fashion-mnist, cifar10, cifar100 or synthetic", name)
}

// longTail draws the long-tailed subset of train.
func longTail(train, test *Dataset, nMax int, imbalance float64, subsetSeed uint32) (*Dataset, *Dataset, []int64, error) {
	counts, err := LongTailCounts(train.Classes, nMax, imbalance)
	if err != nil {
		return nil, nil, nil, err
	}
	idx, err := LongTailSubset(train.Labels, counts, subsetSeed)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", train.Name, err)
	}
	sub, err := train.Subset(idx)
	if err != nil {
		return nil, nil, nil, err
	}
	sub.Name = fmt.Sprintf("%s-lt-if%g", train.Name, imbalance)
	return sub, test, idx, nil
}
