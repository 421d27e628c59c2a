package dist

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestShardMatchesDistributedSampler: Shard of TorchRandperm(n, seed +
// epoch) is what PyTorch's DistributedSampler gives each rank, index for
// index, and TorchRandperm is torch.randperm (testdata/sampler.json, from
// Debian's python3-torch by gen_sampler.py).
func TestShardMatchesDistributedSampler(t *testing.T) {
	b, err := os.ReadFile("testdata/sampler.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Samplers []struct {
			N, World int
			Seed     uint64
			Epoch    uint64
			Ranks    [][]int64
		}
		Randperm []struct {
			N    int
			Seed uint64
			Perm []int64
		}
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	for _, p := range want.Randperm {
		if got := TorchRandperm(p.N, p.Seed); !slices.Equal(got, p.Perm) {
			t.Errorf("TorchRandperm(%d, %d) differs from torch.randperm", p.N, p.Seed)
		}
	}
	for _, c := range want.Samplers {
		order := TorchRandperm(c.N, c.Seed+c.Epoch)
		for r, w := range c.Ranks {
			if got := Shard(order, r, c.World); !slices.Equal(got, w) {
				t.Errorf("n %d, world %d, seed %d, epoch %d, rank %d: %v, DistributedSampler %v", c.N, c.World, c.Seed, c.Epoch, r, got, w)
			}
		}
	}
}

func TestSplitCoversOnce(t *testing.T) {
	for _, c := range []struct{ n, world int }{{10, 3}, {7, 7}, {2, 5}, {0, 2}, {10000, 2}} {
		seen := make([]int, c.n)
		for r := 0; r < c.world; r++ {
			for _, i := range Split(c.n, r, c.world) {
				seen[i]++
			}
		}
		for i, k := range seen {
			if k != 1 {
				t.Fatalf("n %d, world %d: item %d taken %d times", c.n, c.world, i, k)
			}
		}
	}
}

func TestFromEnv(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		ok   bool
		want Env
		err  string
	}{
		{"not a worker", map[string]string{}, false, Env{}, ""},
		{"torchrun", map[string]string{"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "29600"},
			true, Env{Rank: 3, World: 4, LocalRank: 1, Addr: "10.0.0.2", Port: 29600}, ""},
		{"agent store", map[string]string{"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "29500", "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "2"},
			true, Env{World: 2, Addr: "127.0.0.1", Port: 29500, AgentStore: true, Prefix: "/worker/attempt_2"}, ""},
		{"rank out of range", map[string]string{"WORLD_SIZE": "2", "RANK": "2"}, true, Env{}, "RANK=\"2\": want an integer in 0..1"},
		{"bad port", map[string]string{"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "http"}, true, Env{}, "MASTER_PORT=\"http\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok, err := FromEnv(func(k string) string { return c.env[k] })
			if ok != c.ok || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("FromEnv = %+v, %v, %v; want ok %v, error %q", got, ok, err, c.ok, c.err)
			}
			if err == nil && got != c.want {
				t.Errorf("FromEnv = %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestEnvironRoundTrip: the variables a launcher sets from an Env are read
// back by FromEnv as the same Env.
func TestEnvironRoundTrip(t *testing.T) {
	want := Env{Rank: 2, LocalRank: 0, World: 3, Addr: "10.1.2.3", Port: 29601}
	vars := map[string]string{}
	for _, kv := range want.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	got, ok, err := FromEnv(func(k string) string { return vars[k] })
	if !ok || err != nil || got != want {
		t.Errorf("FromEnv(Environ(%+v)) = %+v, %v, %v", want, got, ok, err)
	}
}
