// Package dist is data-parallel training over libtorch's own distributed
// engine (c10d): the environment torchrun gives each worker, a process
// group (Gloo) with the collectives a trainer needs, and the sharding of
// an epoch's indices as PyTorch's DistributedSampler does it. World size 1
// is a no-op group: the single-process trainer runs unchanged.
package dist

import (
	"fmt"
	"net"
	"strconv"
)

// Env is one worker's place in a job, as torchrun (or lwr's own
// launcher) describes it in the environment.
type Env struct {
	Rank, World, LocalRank int
	Addr                   string // MASTER_ADDR: the host of the TCP store
	Port                   int    // MASTER_PORT
	// AgentStore: torchrun's agent already serves the store on Port
	// (TORCHELASTIC_USE_AGENT_STORE=True): every rank is a client, and
	// keys carry Prefix.
	AgentStore bool
	Prefix     string
}

// FromEnv reads a worker's Env with getenv (os.Getenv). ok is false when
// the process was not started as a worker (no WORLD_SIZE); a malformed or
// inconsistent variable is an error naming it.
func FromEnv(getenv func(string) string) (env Env, ok bool, err error) {
	if getenv("WORLD_SIZE") == "" {
		return Env{}, false, nil
	}
	num := func(name string, lo, hi int) (int, error) {
		v := getenv(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, fmt.Errorf("%s=%q: want an integer in %d..%d", name, v, lo, hi)
		}
		return n, nil
	}
	if env.World, err = num("WORLD_SIZE", 1, 1<<16); err != nil {
		return Env{}, true, err
	}
	if env.Rank, err = num("RANK", 0, env.World-1); err != nil {
		return Env{}, true, err
	}
	env.LocalRank = env.Rank
	if getenv("LOCAL_RANK") != "" {
		if env.LocalRank, err = num("LOCAL_RANK", 0, env.World-1); err != nil {
			return Env{}, true, err
		}
	}
	env.Addr = getenv("MASTER_ADDR")
	if env.Addr == "" {
		env.Addr = "127.0.0.1"
	}
	env.Port = 29500
	if getenv("MASTER_PORT") != "" {
		if env.Port, err = num("MASTER_PORT", 1, 65535); err != nil {
			return Env{}, true, err
		}
	}
	if getenv("TORCHELASTIC_USE_AGENT_STORE") == "True" {
		env.AgentStore = true
		env.Prefix = "/worker/attempt_" + getenv("TORCHELASTIC_RESTART_COUNT")
		if getenv("TORCHELASTIC_RESTART_COUNT") == "" {
			env.Prefix += "0"
		}
	}
	return env, true, nil
}

// Environ is e as the environment variables FromEnv reads (torchrun's
// names), to start a worker with.
func (e Env) Environ() []string {
	return []string{"RANK=" + strconv.Itoa(e.Rank), "LOCAL_RANK=" + strconv.Itoa(e.LocalRank),
		"WORLD_SIZE=" + strconv.Itoa(e.World), "MASTER_ADDR=" + e.Addr, "MASTER_PORT=" + strconv.Itoa(e.Port)}
}

// FreePort is a TCP port of the loopback nobody listens on at the moment
// of asking (for a job's store).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
