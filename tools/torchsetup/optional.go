package main

// Gloo and oneDNN: the optional dependencies of lwr's kernels, found
// beside the libtorch in use.

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// glooInclude returns the folder holding gloo/config.h for lt — its own
// include folder (a libtorch built with Gloo headers) or the system's
// (Debian's libgloo-dev) — or "" when there is none: then the c10d shim
// (internal/csrc/dist.cpp) builds without LWR_GLOO, and every call says
// what to install.
func glooInclude(lt Libtorch) string {
	return headerFolder(lt, filepath.Join("gloo", "config.h"), "/usr/include")
}

// headerFolder returns the first of lt's include folders, then the
// system folders, that holds header (a relative path); "" when none does.
func headerFolder(lt Libtorch, header string, system ...string) string {
	for _, dir := range append(slices.Clone(lt.Includes), system...) {
		if _, err := os.Stat(filepath.Join(dir, header)); err == nil {
			return dir
		}
	}
	return ""
}

// glooFlags are the preprocessor flags of c10d's Gloo headers in lt.Gloo:
// the define they sit behind, and their folder (includeFlags).
func glooFlags(lt Libtorch) []string {
	return append([]string{"-DUSE_C10D_GLOO"}, includeFlags(lt, lt.Gloo)...)
}

// includeFlags is -I dir, unless the compiler searches dir already: a
// system folder, or one of lt's own.
func includeFlags(lt Libtorch, dir string) []string {
	if isSystemDir(dir) || slices.Contains(lt.Includes, dir) {
		return nil
	}
	return []string{"-I" + dir}
}

// dnnlOf finds the oneDNN that lt's libtorch_cpu.so is dynamically linked
// with (Debian's libtorch links the system's libdnnl.so.2; PyPI's torch
// carries its own, hidden inside): the library's soname and folder, and the
// folder holding its headers (oneapi/dnnl/dnnl.hpp, Debian's libdnnl-dev).
// soname is "" when libtorch does not link one; include is "" when the
// headers are missing.
func dnnlOf(lt Libtorch) (soname, libDir, include string) {
	f, err := elf.Open(filepath.Join(lt.LibDir, "libtorch_cpu.so"))
	if err != nil {
		return "", "", ""
	}
	libs, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		return "", "", ""
	}
	for _, l := range libs {
		if strings.HasPrefix(l, "libdnnl.so") {
			soname = l
		}
	}
	if soname == "" {
		return "", "", ""
	}
	dirs := []string{lt.LibDir}
	for _, l := range systemLayouts {
		dirs = append(dirs, l.lib)
	}
	dirs = append(dirs, "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, soname)); err == nil {
			libDir = d
			break
		}
	}
	if libDir == "" {
		return "", "", ""
	}
	return soname, libDir, headerFolder(lt, filepath.Join("oneapi", "dnnl", "dnnl.hpp"), "/usr/include", "/usr/local/include")
}

// dnnlFlags are the preprocessor and linker flags of the fused
// convolutions against lt.DNNL: the define they sit behind, the headers'
// folder unless the compiler searches it already, and the very library
// libtorch loads (by soname, so no libdnnl.so link is needed).
func dnnlFlags(lt Libtorch) (cpp, ld []string) {
	cpp = append([]string{"-DLWR_DNNL"}, includeFlags(lt, lt.DNNL)...)
	if !isSystemDir(lt.DNNLLibDir) && lt.DNNLLibDir != lt.LibDir {
		ld = append(ld, "-L"+lt.DNNLLibDir, "-Wl,-rpath,"+lt.DNNLLibDir)
	}
	return cpp, append(ld, "-l:"+lt.DNNLSoname)
}
