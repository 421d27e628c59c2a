package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	// v2_11_forward.h and v2_11_headeronly.h are PyTorch 2.11's (pip
	// wheel): torch/version.h forwards to torch/headeronly/version.h.
	cases := []struct{ file, then, want, wantErr string }{
		{"v1_13.h", "", "1.13.0", ""},
		{"v2_11.h", "", "2.11.0", ""},
		{"v2_11_forward.h", "v2_11_headeronly.h", "2.11.0", ""},
		{"v2_11_forward.h", "missing.h", "", "v2_11_forward.h: no TORCH_VERSION_MAJOR"},
		{"broken.h", "", "", "no TORCH_VERSION_MAJOR"},
		{"missing.h", "", "", "read version"},
	}
	for _, c := range cases {
		t.Run(c.file+"+"+c.then, func(t *testing.T) {
			paths := []string{filepath.Join("testdata", "versions", c.file)}
			if c.then != "" {
				paths = append(paths, filepath.Join("testdata", "versions", c.then))
			}
			got, err := readVersion(paths...)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestFindLibtorchEnvErrors(t *testing.T) {
	noTorch := t.TempDir()
	os.MkdirAll(filepath.Join(noTorch, "include"), 0o755)
	noLib := t.TempDir()
	os.MkdirAll(filepath.Join(noLib, "include", "torch", "csrc", "api", "include", "torch"), 0o755)
	v, _ := os.ReadFile(filepath.Join("testdata", "versions", "v1_13.h"))
	os.WriteFile(filepath.Join(noLib, "include", "torch", "csrc", "api", "include", "torch", "version.h"), v, 0o644)
	cases := []struct{ env, want string }{
		{"/nonexistent", "LIBTORCH=/nonexistent: no such folder"},
		{noTorch, "LIBTORCH=" + noTorch + ": no include/torch in it"},
		{noLib, "LIBTORCH=" + noLib + ": no lib/libtorch_cpu.so in it"},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			_, err := Find(FindOptions{Env: c.env})
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to start %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestLibGo(t *testing.T) {
	sys := Libtorch{Source: "system", Version: "1.13.0", Includes: []string{"/usr/include", "/usr/include/torch/csrc/api/include"},
		LibDir: "/usr/lib/x86_64-linux-gnu", CXX11ABI: true}
	pip := Libtorch{Source: "LIBTORCH", Version: "2.11.0", Includes: []string{"/opt/torch/include", "/opt/torch/include/torch/csrc/api/include"},
		LibDir: "/opt/torch/lib", CUDA: true, CXX11ABI: false, CXXStd: "c++17"}
	newest := pip
	newest.Version, newest.CXXStd = "2.15.0", "c++20"
	sysGloo, sysDNNL := sys, sys
	sysGloo.Gloo = "/usr/include"
	sysDNNL.DNNL, sysDNNL.DNNLSoname, sysDNNL.DNNLLibDir = "/usr/include", "libdnnl.so.2", "/lib/x86_64-linux-gnu"
	cases := []struct {
		name          string
		lt            Libtorch
		want, notWant []string
	}{
		{"system", sys,
			[]string{"-D_GLIBCXX_USE_CXX11_ABI=1", "-I/usr/include/torch/csrc/api/include", "-ltorch -ltorch_cpu -lc10", "-std=c++17"},
			[]string{"-I/usr/include ", "-L/usr/lib", "rpath", "torch_cuda"}},
		{"pip-cuda", pip,
			[]string{"-D_GLIBCXX_USE_CXX11_ABI=0", "-I/opt/torch/include ", "-L/opt/torch/lib -Wl,-rpath,/opt/torch/lib",
				"-Wl,--no-as-needed -ltorch_cuda -lc10_cuda", "-std=c++17"},
			nil},
		{"c++20", newest, []string{"-std=c++20"}, []string{"-std=c++17"}},
		{"gloo is the kernels'", sysGloo, nil, []string{"GLOO", "gloo"}},
		{"onednn is the kernels'", sysDNNL, nil, []string{"LWR_DNNL", "dnnl"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := LibGo(c.lt)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("lib.go lacks %q:\n%s", w, got)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(got, w) {
					t.Errorf("lib.go has %q:\n%s", w, got)
				}
			}
			if !strings.Contains(got, "package libtch\n") || !strings.Contains(got, "import \"C\"\n") {
				t.Errorf("not a cgo file:\n%s", got)
			}
		})
	}
}

// TestKernelFlags: lwr's kernels build with its own flags (optimised,
// warnings fatal), libtorch's headers as system headers, and each optional
// variant's define, headers and library only where setup found it compiles.
func TestKernelFlags(t *testing.T) {
	sys := Libtorch{Source: "system", Version: "1.13.0", Includes: []string{"/usr/include", "/usr/include/torch/csrc/api/include"},
		LibDir: "/usr/lib/x86_64-linux-gnu", CXX11ABI: true}
	pip := Libtorch{Source: "LIBTORCH", Version: "2.11.0", Includes: []string{"/opt/torch/include", "/opt/torch/include/torch/csrc/api/include"},
		LibDir: "/opt/torch/lib", CUDA: true, CXXStd: "c++17"}
	sysBoth := sys
	sysBoth.Gloo, sysBoth.DNNL, sysBoth.DNNLSoname, sysBoth.DNNLLibDir = "/usr/include", "/usr/include", "libdnnl.so.2", "/lib/x86_64-linux-gnu"
	pipGloo := pip
	pipGloo.Gloo = "/opt/gloo/include"
	ownDNNL := pip
	ownDNNL.DNNL, ownDNNL.DNNLSoname, ownDNNL.DNNLLibDir = "/opt/dnnl/include", "libdnnl.so.3", "/opt/dnnl/lib"
	all := KernelVariants{Gloo: true, DNNL: true}
	cases := []struct {
		name          string
		lt            Libtorch
		v             KernelVariants
		want, notWant []string
	}{
		{"system", sys, KernelVariants{},
			[]string{"package csrc\n", "-isystem /usr/include/torch/csrc/api/include", "-O3 -Wall -Wextra -Werror", "-std=c++17",
				"-ltorch -ltorch_cpu -lc10", "// inputs abc\n"},
			[]string{"-I/usr/include", "-isystem /usr/include ", "LWR_GLOO", "LWR_DNNL", "rpath", "torch_cuda"}},
		{"pip", pip, KernelVariants{},
			[]string{"-isystem /opt/torch/include ", "-D_GLIBCXX_USE_CXX11_ABI=0", "-L/opt/torch/lib -Wl,-rpath,/opt/torch/lib"}, nil},
		{"system variants", sysBoth, all,
			[]string{"-DLWR_GLOO -DUSE_C10D_GLOO", "-DLWR_DNNL", "-lc10 -l:libdnnl.so.2"}, []string{"-L/lib", "-isystem /usr/include "}},
		{"found, did not compile", sysBoth, KernelVariants{}, nil, []string{"GLOO", "DNNL", "dnnl"}},
		{"gloo elsewhere", pipGloo, KernelVariants{Gloo: true}, []string{"-DUSE_C10D_GLOO -isystem /opt/gloo/include"}, nil},
		{"onednn elsewhere", ownDNNL, KernelVariants{DNNL: true},
			[]string{"-DLWR_DNNL -isystem /opt/dnnl/include", "-L/opt/dnnl/lib -Wl,-rpath,/opt/dnnl/lib -l:libdnnl.so.3"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := KernelFlags(c.lt, c.v, "abc")
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("cgo_flags.go lacks %q:\n%s", w, got)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(got, w) {
					t.Errorf("cgo_flags.go has %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestIdentityChangesWithLibtorch(t *testing.T) {
	a := Libtorch{Root: "/a", LibDir: "/a/lib", Version: "2.1.0"}
	b := a
	b.Root, b.LibDir = "/b", "/b/lib"
	c := a
	c.CUDA = true
	d := a
	d.Gloo = "/usr/include" // libgloo-dev installed since: the shim is built
	e := a
	e.DNNL = "/usr/include" // libdnnl-dev installed since: fused evaluation is built
	if a.Identity() == b.Identity() || a.Identity() == c.Identity() || a.Identity() == d.Identity() || a.Identity() == e.Identity() {
		t.Error("identity does not change with the libtorch")
	}
	if a.Identity() != a.Identity() {
		t.Error("identity is not stable")
	}
}

// TestCXXStandard: PyTorch 2.15's ATen.h refuses C++17 (testdata from its
// wheel); older headers, or none, get C++17.
func TestCXXStandard(t *testing.T) {
	for dir, want := range map[string]string{"cxx20": "c++20", "cxx17": "c++17", "missing": "c++17"} {
		if got := cxxStandard(filepath.Join("testdata", "std", dir)); got != want {
			t.Errorf("%s: %s, want %s", dir, got, want)
		}
	}
}

// TestGlooInclude: Gloo's headers are found in the libtorch's include
// folders first.
func TestGlooInclude(t *testing.T) {
	dir := t.TempDir()
	own := Libtorch{Includes: []string{dir}}
	if err := os.MkdirAll(filepath.Join(dir, "gloo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gloo", "config.h"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := glooInclude(own); got != dir {
		t.Errorf("glooInclude = %q, want the libtorch's own %s", got, dir)
	}
	_, err := os.Stat("/usr/include/gloo/config.h")
	want := ""
	if err == nil {
		want = "/usr/include"
	}
	if got := glooInclude(Libtorch{Includes: []string{t.TempDir()}}); got != want {
		t.Errorf("glooInclude without headers of its own = %q, want %q (the system's, if any)", got, want)
	}
}

// TestDnnlOf: the oneDNN a libtorch_cpu.so links is found by its soname in
// the library's own folder, with its headers in the libtorch's include
// folders (or the system's); a libtorch linking none has none. The
// libraries are tiny ones built here with the sonames that matter.
func TestDnnlOf(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	lib, inc, plain := filepath.Join(dir, "lib"), filepath.Join(dir, "include"), filepath.Join(dir, "plain")
	for _, d := range []string{lib, plain, filepath.Join(inc, "oneapi", "dnnl")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(dir, "x.c")
	if err := os.WriteFile(src, []byte("int lwr_x(void) { return 1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gcc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("gcc", append([]string{"-shared", "-fPIC", "-o"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	gcc(filepath.Join(lib, "libdnnl.so.2"), src, "-Wl,-soname,libdnnl.so.2")
	gcc(filepath.Join(lib, "libtorch_cpu.so"), src, "-Wl,--no-as-needed", "-L"+lib, "-l:libdnnl.so.2")
	gcc(filepath.Join(plain, "libtorch_cpu.so"), src)

	system := ""
	if _, err := os.Stat("/usr/include/oneapi/dnnl/dnnl.hpp"); err == nil {
		system = "/usr/include"
	}
	linked := Libtorch{LibDir: lib, Includes: []string{inc}}
	if so, d, h := dnnlOf(linked); so != "libdnnl.so.2" || d != lib || h != system {
		t.Errorf("without headers: %q %q %q, want libdnnl.so.2 %s %q", so, d, h, lib, system)
	}
	if err := os.WriteFile(filepath.Join(inc, "oneapi", "dnnl", "dnnl.hpp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if so, d, h := dnnlOf(linked); so != "libdnnl.so.2" || d != lib || h != inc {
		t.Errorf("with headers: %q %q %q, want libdnnl.so.2 %s %s", so, d, h, lib, inc)
	}
	if so, d, h := dnnlOf(Libtorch{LibDir: plain, Includes: []string{inc}}); so != "" || d != "" || h != "" {
		t.Errorf("a libtorch linking no oneDNN: %q %q %q, want nothing", so, d, h)
	}
}
