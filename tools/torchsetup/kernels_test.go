package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKernelFlagsFollowEdits: cgo_flags.go records what it was made from;
// WriteKernelFlags leaves it alone while nothing changed and rewrites it
// when a kernel file is edited or added, with no version to bump. (cgo
// rebuilds the edited kernel itself; the flags are rechecked because a
// variant may no longer compile.) The libtorch has no Gloo or oneDNN, so
// nothing is compiled here.
func TestKernelFlagsFollowEdits(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("batchnorm.cpp", "int a;\n")
	write("tensor.h", "#pragma once\n")
	lt := Libtorch{Source: "system", Version: "1.13.0", Includes: []string{"/usr/include"}, LibDir: "/usr/lib/x86_64-linux-gnu"}
	var said []string
	log := func(format string, args ...any) { said = append(said, format) }
	flags := filepath.Join(dir, flagsFile)
	stamp := func() string {
		t.Helper()
		b, err := os.ReadFile(flags)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "// inputs ") {
				return l
			}
		}
		t.Fatalf("%s records no inputs:\n%s", flags, b)
		return ""
	}
	if err := WriteKernelFlags(dir, lt, false, log); err != nil {
		t.Fatal(err)
	}
	first := stamp()
	said = nil
	if err := WriteKernelFlags(dir, lt, false, log); err != nil {
		t.Fatal(err)
	}
	if len(said) != 1 || !strings.Contains(said[0], "up to date") || stamp() != first {
		t.Errorf("nothing changed, yet setup said %q and the stamp moved", said)
	}
	for _, edit := range []struct{ name, text string }{{"batchnorm.cpp", "int b;\n"}, {"conv_blocked.cpp", "int c;\n"}} {
		write(edit.name, edit.text)
		before := stamp()
		if err := WriteKernelFlags(dir, lt, false, log); err != nil {
			t.Fatal(err)
		}
		if stamp() == before {
			t.Errorf("%s edited: cgo_flags.go was not rewritten", edit.name)
		}
	}
	if err := WriteKernelFlags(t.TempDir(), lt, false, log); err == nil || !strings.Contains(err.Error(), "no kernel sources") {
		t.Errorf("a folder without kernels: err = %v", err)
	}
}
