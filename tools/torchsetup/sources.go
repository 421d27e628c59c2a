package main

import (
	"crypto/sha256"
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

// ownSources are setup's own Go files, whose hash stamps what it writes:
// a change to a patch or to how flags are made rebuilds the adapted copy,
// with no version to bump by hand.
//
//go:embed *.go
var ownSources embed.FS

// sourcesHash hashes setup's Go files, tests left out.
func sourcesHash() string {
	h := sha256.New()
	names, _ := fs.Glob(ownSources, "*.go")
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, _ := ownSources.ReadFile(n)
		fmt.Fprintf(h, "%s %d\n%s", n, len(b), b)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}
