// Command torchsetup adapts gotch v0.9.1 to the libtorch found on this
// machine. It copies the pristine module from the Go module cache into
// third_party/gotch (which go.mod replaces gotch with), writes the cgo flags
// of libtch/lib.go for that libtorch, and turns each generated C++ wrapper that
// does not compile against its headers into one that raises a runtime error.
//
// A second run with the same libtorch is a no-op; another libtorch redoes it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

const (
	gotchModule   = "github.com/sugarme/gotch"
	gotchVersion  = "v0.9.1"
	generatedFile = "torch_api_generated.cpp.h"
	stampFile     = ".lwr-setup.json"
)

// Stamp records what an adapted copy was made for.
type Stamp struct {
	Setup    string   `json:"setup"` // sourcesHash: setup's own Go files
	Gotch    string   `json:"gotch"`
	Identity string   `json:"libtorch_identity"`
	Libtorch Libtorch `json:"libtorch"`
	Adapted  []string `json:"adapted"`
	Total    int      `json:"total_wrappers"`
}

func main() {
	out := flag.String("out", "third_party/gotch", "folder to write the adapted gotch into")
	python := flag.String("python", "python3", "python interpreter whose torch package may serve as libtorch (empty: skip)")
	install := flag.Bool("install", true, "install Debian's libtorch-dev with apt-get when no libtorch is found (as root)")
	kernels := flag.String("kernels", "internal/csrc", "folder of lwr's C++ kernels, where setup writes their cgo flags ("+flagsFile+")")
	force := flag.Bool("force", false, "adapt again even if the copy is up to date")
	flag.Parse()
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "setup: "+format+"\n", args...) }
	if err := run(*out, *kernels, *python, *install, *force, log); err != nil {
		fmt.Fprintf(os.Stderr, "setup: %v\n", err)
		os.Exit(1)
	}
}

// run finds libtorch, adapts gotch to it in out (unless that copy is
// current) and writes the kernels' cgo flags in kernels.
func run(out, kernels, python string, install, force bool, log func(string, ...any)) error {
	lt, err := Find(FindOptions{Env: os.Getenv("LIBTORCH"), Python: python, Install: install, Log: log})
	if err != nil {
		return err
	}
	log("using %s", lt.Describe())
	if install && os.Geteuid() == 0 {
		lt = installOptional(lt, log)
	}
	if err := adaptGotch(out, lt, force, log); err != nil {
		return err
	}
	return WriteKernelFlags(kernels, lt, force, log)
}

// installOptional installs, with apt-get, the headers of the Gloo and
// oneDNN that Debian's libtorch links, when they are missing: c10d's Gloo
// backend (data-parallel training) and the oneDNN kernels (fused
// evaluation, blocked convolutions). Setup goes on without them.
func installOptional(lt Libtorch, log func(string, ...any)) Libtorch {
	if lt.Source != "system" {
		return lt
	}
	if lt.Gloo == "" {
		log("installing libgloo-dev (Gloo's headers, for data-parallel training) with apt-get")
		if err := aptInstall("libgloo-dev"); err != nil {
			log("could not install libgloo-dev: %v", err)
		}
		lt.Gloo = glooInclude(lt)
	}
	if lt.DNNLSoname != "" && lt.DNNL == "" {
		log("installing libdnnl-dev (oneDNN's headers, for fused evaluation) with apt-get")
		if err := aptInstall("libdnnl-dev"); err != nil {
			log("could not install libdnnl-dev: %v", err)
		}
		lt.DNNLSoname, lt.DNNLLibDir, lt.DNNL = dnnlOf(lt)
	}
	return lt
}

// adaptGotch copies pristine gotch into out, writes its lib.go for lt,
// applies Patches and stubs the wrappers lt's headers cannot compile,
// unless out is already that (same setup, gotch and libtorch).
func adaptGotch(out string, lt Libtorch, force bool, log func(string, ...any)) error {
	want := Stamp{Setup: sourcesHash(), Gotch: gotchVersion, Identity: lt.Identity(), Libtorch: lt}
	if !force {
		if got, err := readStamp(filepath.Join(out, stampFile)); err == nil &&
			got.Setup == want.Setup && got.Gotch == want.Gotch && got.Identity == want.Identity {
			log("%s is up to date (%d of %d wrappers adapted)", out, len(got.Adapted), got.Total)
			return nil
		}
	}
	start := time.Now()
	pristine, err := moduleDir(gotchModule, gotchVersion)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := copyTree(pristine, tmp, []string{"example", "gen"}); err != nil {
		return fmt.Errorf("copy %s: %w", pristine, err)
	}
	libtch := filepath.Join(tmp, "libtch")
	if err := os.WriteFile(filepath.Join(libtch, "lib.go"), []byte(LibGo(lt)), 0o644); err != nil {
		return err
	}
	if err := ApplyPatches(tmp, Patches); err != nil {
		return err
	}
	var done []string
	for _, p := range Patches {
		done = append(done, fmt.Sprintf("%s %d", p.Name, p.Want))
	}
	log("patched gotch (places changed): %s", strings.Join(done, ", "))
	adapted, total, err := adapt(libtch, lt, log)
	if err != nil {
		return err
	}
	want.Adapted, want.Total = adapted, total
	stamp, _ := json.MarshalIndent(want, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, stampFile), append(stamp, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	log("adapted %d of %d generated wrappers for libtorch %s in %s; wrote %s",
		len(adapted), total, lt.Version, time.Since(start).Round(time.Second), out)
	return nil
}

// adapt compiles the wrappers against lt's headers (syntax only) and stubs
// the ones that fail, until the file compiles. It returns the stubbed names
// and the number of wrappers.
func adapt(libtch string, lt Libtorch, log func(string, ...any)) ([]string, int, error) {
	genPath := filepath.Join(libtch, generatedFile)
	b, err := os.ReadFile(genPath)
	if err != nil {
		return nil, 0, err
	}
	src := string(b)
	fns, err := Functions(src)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", genPath, err)
	}
	var adapted []string
	for round := 1; round <= 4; round++ {
		log("checking %d wrappers against libtorch %s headers (round %d)...", len(fns), lt.Version, round)
		diag, ok, err := syntaxCheck(libtch, lt, src)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return adapted, len(fns), nil
		}
		lines := ErrorLines(diag, generatedFile)
		if len(lines) == 0 {
			return nil, 0, fmt.Errorf("gotch's C++ does not compile against libtorch %s at %s, outside the generated wrappers:\n%s",
				lt.Version, lt.Includes[0], FirstError(diag))
		}
		var names []string
		src, names, err = Stub(src, lines, lt.Version)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %v; first compiler error:\n%s", generatedFile, err, FirstError(diag))
		}
		adapted = append(adapted, names...)
		if err := os.WriteFile(genPath, []byte(src), 0o644); err != nil {
			return nil, 0, err
		}
	}
	return nil, 0, errors.New("generated wrappers still do not compile after 4 rounds of adapting")
}

// syntaxCheck compiles gotch's C++ with -fsyntax-only, split in as many
// parts as there are cores. It reports the compiler output and whether all
// parts compiled.
func syntaxCheck(libtch string, lt Libtorch, src string) (string, bool, error) {
	fns, err := Functions(src)
	if err != nil {
		return "", false, err
	}
	parts := runtime.NumCPU()
	if parts > 8 {
		parts = 8
	}
	if parts < 1 {
		parts = 1
	}
	lines := strings.Split(src, "\n")
	dir, err := os.MkdirTemp("", "torchsetup")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(dir)
	var wg sync.WaitGroup
	outs := make([]string, parts)
	oks := make([]bool, parts)
	errs := make([]error, parts)
	for p := 0; p < parts; p++ {
		lo, hi := p*len(fns)/parts, (p+1)*len(fns)/parts
		if lo == hi {
			oks[p] = true
			continue
		}
		// Keep line numbers: blank out the wrappers of other parts.
		part := make([]string, len(lines))
		for i := range part {
			part[i] = ""
		}
		for _, f := range fns[lo:hi] {
			copy(part[f.First-1:f.Last], lines[f.First-1:f.Last])
		}
		name := filepath.Join(dir, fmt.Sprintf("part%d", p), generatedFile)
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, []byte(strings.Join(part, "\n")), 0o644); err != nil {
			return "", false, err
		}
		// torch_api.cpp includes the generated file by a quoted name, which
		// resolves next to the including file first: this part's copy.
		tu := filepath.Join(filepath.Dir(name), "torch_api.cpp")
		if err := copyFile(filepath.Join(libtch, "torch_api.cpp"), tu); err != nil {
			return "", false, err
		}
		wg.Add(1)
		go func(p int, tu string) {
			defer wg.Done()
			args := append(compileFlags(lt, libtch), "-fsyntax-only", "-w", "-fmax-errors=0", tu)
			cmd := exec.Command("g++", args...)
			var buf bytes.Buffer
			cmd.Stdout, cmd.Stderr = &buf, &buf
			err := cmd.Run()
			outs[p] = buf.String()
			var ee *exec.ExitError
			switch {
			case err == nil:
				oks[p] = true
			case errors.As(err, &ee):
			default:
				errs[p] = fmt.Errorf("run g++: %v", err)
			}
		}(p, tu)
	}
	wg.Wait()
	ok := true
	for p := range outs {
		if errs[p] != nil {
			return "", false, errs[p]
		}
		ok = ok && oks[p]
	}
	return strings.Join(outs, "\n"), ok, nil
}

// compileFlags are the g++ flags of the syntax checks of gotch's C++ (in
// folder dir) and lwr's: the same defines and include folders as cgo gets.
func compileFlags(lt Libtorch, dir string) []string {
	flags := []string{lt.std(), "-I" + dir, abiDefine(lt)}
	for _, inc := range lt.Includes {
		if !isSystemDir(inc) {
			flags = append(flags, "-I"+inc)
		}
	}
	return flags
}

// moduleDir returns the module cache folder of mod@version, downloading it
// when missing (a no-op offline when the cache has it).
func moduleDir(mod, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", mod+"@"+version)
	cmd.Dir = os.TempDir() // outside our module: its replace of gotch must not apply
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var info struct{ Dir, Error string }
	json.Unmarshal(stdout.Bytes(), &info)
	if err != nil || info.Dir == "" {
		msg := strings.TrimSpace(info.Error + " " + stderr.String())
		return "", fmt.Errorf("fetch %s@%s into the module cache: %s (offline? it must be in the module cache)", mod, version, msg)
	}
	return info.Dir, nil
}

// copyTree copies src to dst with writable files, leaving out the named
// top-level folders.
func copyTree(src, dst string, skip []string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(path, target)
	})
}

// copyFile copies one file, writable by its owner.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}

func readStamp(path string) (Stamp, error) {
	var s Stamp
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}
