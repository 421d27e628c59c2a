// Package mt19937 is NumPy's legacy Mersenne Twister, bit for bit.
package mt19937

// MT19937 is the Mersenne Twister as NumPy's legacy RandomState uses it:
// seeded from one 32-bit integer (np.random.seed(s), RandomState(s)), with
// RandomState.shuffle's draws. It reproduces NumPy's outputs bit for bit,
// which the long-tailed subsets of the reference code depend on.
type MT19937 struct {
	key [624]uint32
	pos int
}

// New seeds the generator as NumPy's mt19937_seed does.
func New(seed uint32) *MT19937 {
	m := &MT19937{}
	s := seed
	for i := range m.key {
		m.key[i] = s
		s = 1812433253*(s^(s>>30)) + uint32(i) + 1
	}
	m.pos = len(m.key)
	return m
}

func (m *MT19937) generate() {
	const (
		n, mm   = 624, 397
		upper   = 0x80000000
		lower   = 0x7fffffff
		matrixA = 0x9908b0df
	)
	k := &m.key
	var i int
	for i = 0; i < n-mm; i++ {
		y := (k[i] & upper) | (k[i+1] & lower)
		k[i] = k[i+mm] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	}
	for ; i < n-1; i++ {
		y := (k[i] & upper) | (k[i+1] & lower)
		k[i] = k[i+(mm-n)] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	}
	y := (k[n-1] & upper) | (k[0] & lower)
	k[n-1] = k[mm-1] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	m.pos = 0
}

// Uint32 is the next tempered 32-bit output.
func (m *MT19937) Uint32() uint32 {
	if m.pos == len(m.key) {
		m.generate()
	}
	y := m.key[m.pos]
	m.pos++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Uint64 joins two outputs, high word first, as NumPy's legacy next_uint64.
func (m *MT19937) Uint64() uint64 {
	hi := uint64(m.Uint32())
	return hi<<32 | uint64(m.Uint32())
}

// Interval draws uniformly from [0, max] by masked rejection, as NumPy's
// legacy random_interval.
func (m *MT19937) Interval(max uint64) uint64 {
	if max == 0 {
		return 0
	}
	mask := max
	for s := uint(1); s <= 32; s *= 2 {
		mask |= mask >> s
	}
	if max <= 0xffffffff {
		for {
			if v := uint64(m.Uint32()) & mask; v <= max {
				return v
			}
		}
	}
	for {
		if v := m.Uint64() & mask; v <= max {
			return v
		}
	}
}

// Shuffle permutes x in place as RandomState.shuffle does a 1-D array.
func (m *MT19937) Shuffle(x []int64) {
	for i := len(x) - 1; i >= 1; i-- {
		j := m.Interval(uint64(i))
		x[i], x[j] = x[j], x[i]
	}
}
