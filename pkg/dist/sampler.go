package dist

import "github.com/lwr-go/lwr/pkg/mt19937"

// Shard returns rank's share of an epoch's indices as DistributedSampler
// (drop_last=False) takes it: order extended cyclically from its start to
// a multiple of world, then every world-th index from rank. Each rank
// gets ceil(len(order)/world) indices.
func Shard(order []int64, rank, world int) []int64 {
	n := len(order)
	if n == 0 {
		return nil
	}
	per := (n + world - 1) / world
	out := make([]int64, 0, per)
	for k := rank; k < per*world; k += world {
		out = append(out, order[k%n])
	}
	return out
}

// Split returns rank's share of n items without padding: items rank,
// rank+world, … . The shares of all ranks cover 0..n-1 exactly once (what
// a sharded evaluation needs, where padding would count images twice).
func Split(n, rank, world int) []int64 {
	var out []int64
	for k := rank; k < n; k += world {
		out = append(out, int64(k))
	}
	return out
}

// TorchRandperm is torch.randperm(n, generator=torch.Generator().
// manual_seed(seed)) on the CPU, the permutation DistributedSampler draws
// with seed + epoch: MT19937 seeded with the seed, then for i in 0..n-2 a
// swap of r[i] and r[i + next32() % (n - i)].
func TorchRandperm(n int, seed uint64) []int64 {
	m := mt19937.New(uint32(seed)) // torch keeps the seed's low 32 bits
	r := make([]int64, n)
	for i := range r {
		r[i] = int64(i)
	}
	for i := 0; i < n-1; i++ {
		z := int(m.Uint32() % uint32(n-i))
		r[i], r[i+z] = r[i+z], r[i]
	}
	return r
}
