package train

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/sugarme/gotch"

	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/libtorch"
)

// newProvenance is where a run of c starting now on dev comes from.
func newProvenance(c Config, dev gotch.Device) config.Provenance {
	wd, _ := os.Getwd()
	rev, modified := vcsState(wd)
	host, _ := os.Hostname()
	device := "cpu"
	if dev.IsCuda() {
		device = fmt.Sprintf("cuda:%d", dev.Value)
	}
	model, isa := cpuModel()
	return config.Provenance{Revision: rev, Modified: modified, GoVersion: runtime.Version(),
		Libtorch: libtorch.Version(), Build: libtorchBuild(), Device: device, CPU: model, ISA: isa,
		Threads: libtorch.NumThreads(), Layout: c.layout(dev), Command: os.Args, Host: host, Start: time.Now().Format(time.RFC3339)}
}

// module is lwr's module path, which vcsState looks for in go.mod.
const module = "github.com/lwr-go/lwr"

// vcsState is lwr's git revision and whether its tracked files had
// changes: stamped in the binary by go build, else (go run, go test) read
// with git from the repository holding dir, when that repository is lwr's.
// Empty and false when neither says.
func vcsState(dir string) (revision string, modified bool) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if revision != "" {
			return revision, modified
		}
	}
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	top, err := git("rev-parse", "--show-toplevel")
	if err != nil {
		return "", false
	}
	mod, err := os.ReadFile(filepath.Join(top, "go.mod"))
	if err != nil || !bytes.HasPrefix(mod, []byte("module "+module+"\n")) {
		return "", false
	}
	if revision, err = git("rev-parse", "HEAD"); err != nil {
		return "", false
	}
	status, err := git("status", "--porcelain", "--untracked-files=no")
	return revision, err == nil && status != ""
}

// libtorchBuild is cuda when the libtorch loaded is a CUDA build (its
// libtorch_cuda is mapped into the process), else cpu.
func libtorchBuild() string {
	maps, err := os.ReadFile("/proc/self/maps")
	if err == nil && bytes.Contains(maps, []byte("libtorch_cuda")) {
		return "cuda"
	}
	return "cpu"
}

// cpuModel is the CPU's model name from /proc/cpuinfo (runtime.GOARCH
// without one) and its widest vector extension, with DNNL_MAX_CPU_ISA
// when that caps oneDNN's kernels.
func cpuModel() (model, isa string) {
	model = runtime.GOARCH
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return model, ""
	}
	defer f.Close()
	var flags []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		switch k = strings.TrimSpace(k); {
		case !ok:
		case k == "model name" && model == runtime.GOARCH:
			model = strings.TrimSpace(v)
		case k == "flags" && flags == nil:
			flags = strings.Fields(v)
		}
	}
	for _, f := range []struct{ flag, name string }{{"avx512f", "AVX-512"}, {"avx2", "AVX2"}, {"sse4_1", "SSE4.1"}} {
		if slices.Contains(flags, f.flag) {
			isa = f.name
			break
		}
	}
	if cap := os.Getenv("DNNL_MAX_CPU_ISA"); cap != "" {
		isa += " (DNNL_MAX_CPU_ISA=" + cap + ")"
	}
	return model, isa
}
