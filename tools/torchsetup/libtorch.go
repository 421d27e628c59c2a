package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Libtorch describes one libtorch installation: where its headers and
// shared libraries are, which version it is and how it was built.
type Libtorch struct {
	Source   string   // how it was found: "LIBTORCH", "python3" or "system"
	Root     string   // the folder named by the user, or /usr for the system one
	Includes []string // -I folders: include/ and include/torch/csrc/api/include
	LibDir   string   // folder holding libtorch_cpu.so
	Version  string   // from torch/version.h, e.g. "1.13.0"
	CUDA     bool     // libtorch_cuda.so is present
	CXX11ABI bool     // built with _GLIBCXX_USE_CXX11_ABI=1
	CXXStd   string   // the C++ standard its headers require: c++17, or c++20 (PyTorch 2.13 and later)
	Gloo     string   // the folder holding gloo/config.h (for c10d's ProcessGroupGloo), "" if none
	// The oneDNN libtorch_cpu.so links dynamically (Debian's does), for
	// fused evaluation: its headers' folder (oneapi/dnnl/dnnl.hpp; "" when
	// missing or when libtorch links none), soname and folder.
	DNNL, DNNLSoname, DNNLLibDir string
}

// Describe is the one line setup prints about the libtorch it uses.
func (l Libtorch) Describe() string {
	dev := "CPU"
	if l.CUDA {
		dev = "CUDA"
	}
	abi := 0
	if l.CXX11ABI {
		abi = 1
	}
	return fmt.Sprintf("libtorch %s (%s, C++11 ABI=%d) from %s: headers %s, libraries %s",
		l.Version, dev, abi, l.Source, l.Includes[0], l.LibDir)
}

// Identity is a hash that changes when the libtorch changes: its paths,
// version, build flavour and the size and time of its main library.
func (l Libtorch) Identity() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%v|%v|%s|%s|", l.Root, l.LibDir, l.Version, l.CUDA, l.CXX11ABI, l.Gloo, l.DNNL)
	if st, err := os.Stat(filepath.Join(l.LibDir, "libtorch_cpu.so")); err == nil {
		fmt.Fprintf(h, "%d|%d", st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// systemLayouts are the include/lib pairs of distribution packages
// (Debian and Ubuntu's libtorch-dev).
var systemLayouts = []struct{ include, lib string }{
	{"/usr/include", "/usr/lib/x86_64-linux-gnu"},
	{"/usr/include", "/usr/lib/aarch64-linux-gnu"},
	{"/usr/include", "/usr/lib64"},
	{"/usr/local/include", "/usr/local/lib"},
}

// FindOptions says where Find may look.
type FindOptions struct {
	Env     string // value of $LIBTORCH; empty when unset
	Python  string // python interpreter to ask for its torch package; empty to skip
	Install bool   // install Debian's libtorch-dev with apt-get when nothing is found
	Log     func(format string, args ...any)
}

// Find locates libtorch: $LIBTORCH when set (and then only there), else the
// torch package of python3 when importable and shipping headers, else the
// system libtorch, installing Debian's libtorch-dev with apt-get when allowed.
func Find(o FindOptions) (Libtorch, error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Env != "" {
		root, err := filepath.Abs(o.Env)
		if err != nil {
			return Libtorch{}, fmt.Errorf("LIBTORCH=%s: %v", o.Env, err)
		}
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			return Libtorch{}, fmt.Errorf("LIBTORCH=%s: no such folder", o.Env)
		}
		return inspect("LIBTORCH", root, filepath.Join(root, "include"), filepath.Join(root, "lib"), "LIBTORCH="+o.Env)
	}
	if o.Python != "" {
		if dir := pythonTorchDir(o.Python); dir != "" {
			lt, err := inspect("python3", dir, filepath.Join(dir, "include"), filepath.Join(dir, "lib"), "python3 torch at "+dir)
			if err == nil {
				return lt, nil
			}
			o.Log("skipping %s's torch package: %v", o.Python, err)
		}
	}
	if lt, ok := findSystem(); ok {
		return lt, nil
	}
	if o.Install {
		if os.Geteuid() != 0 {
			return Libtorch{}, errors.New("no libtorch found: set LIBTORCH to a libtorch folder, or install Debian's libtorch-dev (needs root)")
		}
		o.Log("no libtorch found: installing Debian's libtorch-dev with apt-get")
		if err := aptInstall("libtorch-dev"); err != nil {
			return Libtorch{}, err
		}
		if lt, ok := findSystem(); ok {
			return lt, nil
		}
	}
	return Libtorch{}, errors.New("no libtorch found: set LIBTORCH to a libtorch folder (with include/ and lib/), or install Debian's libtorch-dev")
}

func findSystem() (Libtorch, bool) {
	for _, l := range systemLayouts {
		if _, err := os.Stat(filepath.Join(l.include, "torch", "csrc", "api", "include", "torch", "version.h")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(l.lib, "libtorch_cpu.so")); err != nil {
			continue
		}
		lt, err := inspect("system", filepath.Dir(l.include), l.include, l.lib, "system libtorch")
		if err == nil {
			return lt, true
		}
	}
	return Libtorch{}, false
}

func aptInstall(pkgs ...string) error {
	run := func(args ...string) error {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, lastLines(string(out), 10))
		}
		return nil
	}
	if err := run("update", "-q"); err != nil {
		return err
	}
	return run(append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)...)
}

// pythonTorchDir asks python for the folder of its torch package; "" when
// the interpreter or the package is missing.
func pythonTorchDir(python string) string {
	out, err := exec.Command(python, "-c", "import os, torch; print(os.path.dirname(torch.__file__))").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// inspect checks one candidate layout and reads its version and flavour.
// what names the candidate in error messages.
func inspect(source, root, include, lib, what string) (Libtorch, error) {
	if st, err := os.Stat(filepath.Join(include, "torch")); err != nil || !st.IsDir() {
		return Libtorch{}, fmt.Errorf("%s: no include/torch in it (want a libtorch folder with include/ and lib/)", what)
	}
	lt := Libtorch{
		Source:   source,
		Root:     root,
		Includes: []string{include, filepath.Join(include, "torch", "csrc", "api", "include")},
		LibDir:   lib,
	}
	// torch/version.h holds the version up to 2.x; newer ones forward it
	// to torch/headeronly/version.h.
	v, err := readVersion(filepath.Join(lt.Includes[1], "torch", "version.h"), filepath.Join(include, "torch", "headeronly", "version.h"))
	if err != nil {
		return Libtorch{}, fmt.Errorf("%s: %v", what, err)
	}
	lt.Version = v
	cpu := filepath.Join(lib, "libtorch_cpu.so")
	if _, err := os.Stat(cpu); err != nil {
		return Libtorch{}, fmt.Errorf("%s: no lib/libtorch_cpu.so in it", what)
	}
	if _, err := os.Stat(filepath.Join(lib, "libtorch_cuda.so")); err == nil {
		lt.CUDA = true
	}
	abi, err := cxx11ABI(filepath.Join(lib, "libc10.so"))
	if err != nil {
		return Libtorch{}, fmt.Errorf("%s: %v", what, err)
	}
	lt.CXX11ABI = abi
	lt.CXXStd = cxxStandard(include)
	lt.Gloo = glooInclude(lt)
	lt.DNNLSoname, lt.DNNLLibDir, lt.DNNL = dnnlOf(lt)
	return lt, nil
}

// cxxStandard is the C++ standard the headers under include need:
// c++20 when ATen.h refuses anything older (it tests __cplusplus against
// 202002L), else c++17.
func cxxStandard(include string) string {
	b, err := os.ReadFile(filepath.Join(include, "ATen", "ATen.h"))
	if err == nil && bytes.Contains(b, []byte("__cplusplus < 202002L")) {
		return "c++20"
	}
	return "c++17"
}

// std is the -std flag for lt (c++17 when unknown).
func (l Libtorch) std() string {
	if l.CXXStd == "" {
		return "-std=c++17"
	}
	return "-std=" + l.CXXStd
}

var versionDefine = regexp.MustCompile(`#define\s+TORCH_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)`)

// readVersion reads "MAJOR.MINOR.PATCH" from the first of paths that
// defines it (torch/version.h, or the header it forwards to).
func readVersion(paths ...string) (string, error) {
	var firstErr error
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("read version: %v", err)
			}
			continue
		}
		parts := map[string]string{}
		for _, m := range versionDefine.FindAllSubmatch(b, -1) {
			parts[string(m[1])] = string(m[2])
		}
		if parts["MAJOR"] != "" && parts["MINOR"] != "" && parts["PATCH"] != "" {
			return parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"], nil
		}
		if firstErr == nil || strings.HasPrefix(firstErr.Error(), "read version") {
			firstErr = fmt.Errorf("%s: no TORCH_VERSION_MAJOR/MINOR/PATCH defines", path)
		}
	}
	return "", firstErr
}

// cxx11ABI tells whether a C++ library was built with the C++11 string ABI,
// by looking for std::__cxx11 in the names of its dynamic symbols.
func cxx11ABI(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %v", path, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false, fmt.Errorf("read symbols of %s: %v", path, err)
	}
	for _, s := range syms {
		if strings.Contains(s.Name, "__cxx11") {
			return true, nil
		}
	}
	return false, nil
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewBufferString(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
