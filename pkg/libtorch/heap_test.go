package libtorch

import "testing"

func TestHeapSetByUser(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"}, ""},
		{map[string]string{"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "GLIBC_TUNABLES"},
		{map[string]string{"MALLOC_TRIM_THRESHOLD_": "0"}, "MALLOC_TRIM_THRESHOLD_"},
		{map[string]string{"MALLOC_MMAP_THRESHOLD_": "65536"}, "MALLOC_MMAP_THRESHOLD_"},
		{map[string]string{"MALLOC_ARENA_MAX": "1"}, ""}, // arenas are not what KeepHeap sets
	} {
		if got := heapSetByUser(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("heapSetByUser(%v) = %q, want %q", c.env, got, c.want)
		}
	}
}
