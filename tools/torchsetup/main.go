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
	"crypto/sha256"
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
	gotchModule  = "github.com/sugarme/gotch"
	gotchVersion = "v0.9.1"
	// adapterVersion changes whenever what setup writes changes, so that
	// an old adapted copy is rebuilt.
	adapterVersion = "24"
	generatedFile  = "torch_api_generated.cpp.h"
	stampFile      = ".lwr-setup.json"
)

// Stamp records what an adapted copy was made for.
type Stamp struct {
	Adapter  string   `json:"adapter"`
	Gotch    string   `json:"gotch"`
	Identity string   `json:"libtorch_identity"`
	Libtorch Libtorch `json:"libtorch"`
	Adapted  []string `json:"adapted"`
	Total    int      `json:"total_wrappers"`
}

// adapterID is adapterVersion and a hash of the sources setup writes into
// libtch, so that editing one of them rebuilds the adapted copy without a
// version bump (changes to setup's patching code still need one).
func adapterID() string {
	h := sha256.New()
	for _, text := range []string{extraGo, extraHeader, extraCpp, distGo, distHeader, distCpp, distStub,
		fusedGo, fusedHeader, fusedCpp, bnGo, bnHeader, bnCpp, convGo, convHeader, convCpp} {
		fmt.Fprintf(h, "%d\n%s", len(text), text)
	}
	return fmt.Sprintf("%s+%x", adapterVersion, h.Sum(nil)[:6])
}

func main() {
	out := flag.String("out", "third_party/gotch", "folder to write the adapted gotch into")
	python := flag.String("python", "python3", "python interpreter whose torch package may serve as libtorch (empty: skip)")
	install := flag.Bool("install", true, "install Debian's libtorch-dev with apt-get when no libtorch is found (as root)")
	force := flag.Bool("force", false, "adapt again even if the copy is up to date")
	flag.Parse()
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "setup: "+format+"\n", args...) }
	if err := run(*out, *python, *install, *force, log); err != nil {
		fmt.Fprintf(os.Stderr, "setup: %v\n", err)
		os.Exit(1)
	}
}

func run(out, python string, install, force bool, log func(string, ...any)) error {
	lt, err := Find(FindOptions{Env: os.Getenv("LIBTORCH"), Python: python, Install: install, Log: log})
	if err != nil {
		return err
	}
	log("using %s", lt.Describe())
	if lt.DNNLSoname != "" && lt.DNNL == "" && install && os.Geteuid() == 0 {
		// Debian's libtorch links the system oneDNN, whose headers come
		// apart; without them setup still succeeds, evaluation is slower.
		log("installing libdnnl-dev (oneDNN's headers, for fused evaluation) with apt-get")
		if err := aptInstall("libdnnl-dev"); err != nil {
			log("could not install libdnnl-dev: %v", err)
		}
		lt.DNNLSoname, lt.DNNLLibDir, lt.DNNL = dnnlOf(lt)
	}
	want := Stamp{Adapter: adapterID(), Gotch: gotchVersion, Identity: lt.Identity(), Libtorch: lt}
	if !force {
		if got, err := readStamp(filepath.Join(out, stampFile)); err == nil &&
			got.Adapter == want.Adapter && got.Gotch == want.Gotch && got.Identity == want.Identity {
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
	for name, text := range map[string]string{"lwr_extra.go": extraGo, "lwr_extra.h": extraHeader, "lwr_extra.cpp": extraCpp,
		"lwr_dist.go": distGo, "lwr_dist.h": distHeader, "lwr_fused.go": fusedGo, "lwr_fused.h": fusedHeader, "lwr_fused.cpp": fusedCpp,
		"lwr_bn.go": bnGo, "lwr_bn.h": bnHeader, "lwr_bn.cpp": bnCpp,
		"lwr_conv.go": convGo, "lwr_conv.h": convHeader, "lwr_conv.cpp": convCpp} {
		if err := os.WriteFile(filepath.Join(libtch, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	// The c10d shim: against Gloo's headers when they are here and fit
	// this libtorch, else the stub that says what to install.
	dist := distStub
	if lt.Gloo == "" {
		log("distributed training: no Gloo headers (gloo/config.h); install libgloo-dev for it")
	} else if msg, err := checkDist(libtch, lt); err != nil {
		return err
	} else if msg != "" {
		log("distributed training: the c10d shim does not compile against libtorch %s with the Gloo headers in %s; left out:\n%s", lt.Version, lt.Gloo, msg)
		lt.Gloo = ""
	} else {
		dist = distCpp
		log("distributed training: c10d (Gloo) with the headers in %s", lt.Gloo)
	}
	if err := os.WriteFile(filepath.Join(libtch, "lwr_dist.cpp"), []byte(dist), 0o644); err != nil {
		return err
	}
	// Fused evaluation: against the headers of the oneDNN libtorch links,
	// when they are here and compile (lib.go then defines LWR_DNNL); else
	// lwr_fused.cpp's stub says how to get it.
	switch {
	case lt.DNNLSoname == "":
		log("fused evaluation: libtorch links no shared oneDNN; evaluation runs libtorch's own convolutions")
	case lt.DNNL == "":
		log("fused evaluation: no oneDNN headers (oneapi/dnnl/dnnl.hpp) for libtorch's %s; install libdnnl-dev for faster CPU evaluation", lt.DNNLSoname)
	default:
		if msg, err := checkFused(libtch, lt); err != nil {
			return err
		} else if msg != "" {
			log("fused evaluation: does not compile against the oneDNN headers in %s; left out:\n%s", lt.DNNL, msg)
			lt.DNNL = ""
		} else {
			log("fused evaluation: oneDNN %s with the headers in %s", lt.DNNLSoname, lt.DNNL)
		}
	}
	if err := os.WriteFile(filepath.Join(libtch, "lib.go"), []byte(LibGo(lt)), 0o644); err != nil {
		return err
	}
	bindings := filepath.Join(tmp, "ts", "tensor-generated.go")
	b, err := os.ReadFile(bindings)
	if err != nil {
		return err
	}
	patched, allocs, swaps, err := PatchBindings(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", bindings, err)
	}
	if err := os.WriteFile(bindings, []byte(patched), 0o644); err != nil {
		return err
	}
	log("patched gotch's Go bindings: %d output allocations freed, %d in-place ops release their old handle", allocs, swaps)
	goFiles, err := filepath.Glob(filepath.Join(libtch, "*.go"))
	if err != nil {
		return err
	}
	casts := 0
	for _, f := range goFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fixed, n := PatchCInts(string(b))
		if n > 0 {
			casts += n
			if err := os.WriteFile(f, []byte(fixed), 0o644); err != nil {
				return err
			}
		}
	}
	log("patched %d C int results that gotch read as 8 bytes", casts)
	saver := filepath.Join(libtch, "tensor.go")
	if b, err = os.ReadFile(saver); err != nil {
		return err
	}
	fixed, err := PatchSaveMulti(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", saver, err)
	}
	if err := os.WriteFile(saver, []byte(fixed), 0o644); err != nil {
		return err
	}
	log("patched gotch's checkpoint save: its arrays of C pointers start zeroed")
	fatals, err := patchFatalCalls(tmp)
	if err != nil {
		return err
	}
	log("patched gotch's Go in %d places: log.Fatal calls into panics that lwr returns as errors, TorchErr's message, the per-tensor ballast", fatals)
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

// patchFatalCalls turns gotch's log.Fatal calls into panics (PatchFatal) in
// the packages lwr uses, and shortens ts.TorchErr's errors (PatchTorchErr).
func patchFatalCalls(root string) (int, error) {
	n := 0
	for _, dir := range []string{"", "ts", "nn"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return 0, err
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return 0, err
			}
			src, k := PatchFatal(string(b))
			if filepath.Base(f) == "error.go" && dir == "ts" {
				if src, err = PatchTorchErr(src); err != nil {
					return 0, fmt.Errorf("%s: %w", f, err)
				}
				k++
			}
			if filepath.Base(f) == "tensor.go" && dir == "ts" {
				if src, err = PatchBallast(src); err != nil {
					return 0, fmt.Errorf("%s: %w", f, err)
				}
				k++
			}
			if k == 0 {
				continue
			}
			n += k
			if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
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

// checkDist compiles the c10d shim (syntax only) in libtch against lt
// with its Gloo headers; it returns the first compiler error, "" when it
// compiles.
func checkDist(libtch string, lt Libtorch) (string, error) {
	return firstSyntaxError(libtch, lt, "lwr_dist_check.cpp", distCpp, glooFlags(lt))
}

// firstSyntaxError writes text to name in libtch, compiles it (syntax
// only) with lt's flags and extra, removes it, and returns the first
// compiler error, "" when it compiles.
func firstSyntaxError(libtch string, lt Libtorch, name, text string, extra []string) (string, error) {
	src := filepath.Join(libtch, name)
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		return "", err
	}
	defer os.Remove(src)
	args := append(compileFlags(lt, libtch), extra...)
	cmd := exec.Command("g++", append(args, "-fsyntax-only", "-w", src)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &ee):
		return FirstError(buf.String()), nil
	}
	return "", fmt.Errorf("run g++: %v", err)
}

// compileFlags are the g++ flags of the syntax check: the same defines and
// include folders as lib.go gives cgo.
func compileFlags(lt Libtorch, libtch string) []string {
	flags := []string{lt.std(), "-I" + libtch, abiDefine(lt)}
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
