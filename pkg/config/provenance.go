package config

import (
	"fmt"
	"strings"
)

// Provenance is where a run came from: the code that trained it, the
// libraries, the machine and the command. config.json records it; it is
// not a setting (the settings hash leaves it out), and --resume says which
// of it changed.
type Provenance struct {
	Revision  string `json:"revision,omitempty"` // lwr's VCS revision (git commit); empty when unknown
	Modified  bool   `json:"modified"`           // lwr's tree had uncommitted changes to tracked files
	GoVersion string `json:"go_version"`
	Libtorch  string `json:"libtorch"`       // libtorch's version ("2.11.0")
	Build     string `json:"libtorch_build"` // cpu or cuda: the libtorch build found
	Device    string `json:"device"`         // what trained: cpu, cuda:0
	CPU       string `json:"cpu"`            // the CPU's model name
	// ISA is the widest vector extension the CPU has (AVX-512, AVX2,
	// SSE4.1), and DNNL_MAX_CPU_ISA when set: float32 results depend on it.
	ISA     string `json:"isa,omitempty"`
	Threads int    `json:"threads"` // libtorch's CPU threads
	// Layout is what training's activations ran in, --memory-format
	// resolved: contiguous, channels-last, or blockedB (blocks of B
	// channels) with its --conv-algorithm ("blocked16, auto convolutions").
	// float32 results depend on it.
	Layout  string   `json:"layout,omitempty"`
	Command []string `json:"command"` // the program and its arguments
	Host    string   `json:"host"`
	Start   string   `json:"start"` // when the run started (RFC 3339)
}

// Changes lists what differs between p (a run's start) and now (a
// process resuming it) as "name: a → b", leaving out the command and the
// time, which always differ.
func (p Provenance) Changes(now Provenance) []string {
	var out []string
	add := func(name string, a, b any) {
		if a != b {
			out = append(out, fmt.Sprintf("%s: %v → %v", name, a, b))
		}
	}
	rev := func(p Provenance) string {
		r := p.Revision
		if r == "" {
			r = "unknown"
		}
		if p.Modified {
			r += " (modified)"
		}
		return r
	}
	add("lwr", rev(p), rev(now))
	add("go", p.GoVersion, now.GoVersion)
	add("libtorch", strings.TrimSpace(p.Libtorch+" "+p.Build), strings.TrimSpace(now.Libtorch+" "+now.Build))
	add("device", p.Device, now.Device)
	add("cpu", strings.TrimSpace(p.CPU+" "+p.ISA), strings.TrimSpace(now.CPU+" "+now.ISA))
	add("threads", p.Threads, now.Threads)
	add("layout", p.Layout, now.Layout)
	add("host", p.Host, now.Host)
	return out
}
