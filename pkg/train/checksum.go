package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/regularfile"
)

// A checkpoint's checksum lives beside it, in checkpoint.pt.sha256 (and
// checkpoint.prev.pt.sha256): one "HEX  NAME" line for each SHA-256 the
// file may have. libtorch does not check its zip's CRCs, so bytes changed
// on disk inside a tensor were read silently; the checksum is checked
// before libtorch reads the file.
//
// A checkpoint and its sidecar cannot be renamed together, so the sidecar
// lists the new file's hash beside the old one's before the rename, and
// only the new one's after: a crash at any point leaves a sidecar that
// accepts whichever file is in place.

// sidecar is the checksum file of checkpoint path.
func sidecar(path string) string { return path + ".sha256" }

// maxSidecar bounds what is read of a sidecar: a few lines of 64 hex
// digits and a name.
const maxSidecar = 4096

// readSums returns the hashes path's sidecar accepts; none when there is
// no sidecar (a checkpoint of an older lwr).
func readSums(path string) ([]string, error) {
	f, err := regularfile.Open(sidecar(path))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var sums []string
	sc := bufio.NewScanner(io.LimitReader(f, maxSidecar))
	for sc.Scan() {
		h, _, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if _, err := hex.DecodeString(h); err == nil && len(h) == 64 {
			sums = append(sums, strings.ToLower(h))
		}
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%s: no SHA-256 in it", sidecar(path))
	}
	return sums, nil
}

// writeSums makes path's sidecar list sums (durably, atomically).
func writeSums(path string, sums []string) error {
	var b strings.Builder
	name := filepath.Base(path)
	for _, h := range sums {
		fmt.Fprintf(&b, "%s  %s\n", h, name)
	}
	return atomicfile.WriteFile(sidecar(path), []byte(b.String()))
}

// fileSum is the SHA-256 of the file at path, as hex.
func fileSum(path string) (string, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifySum checks path against its sidecar: nil when they agree or when
// there is no sidecar, else an error saying the file changed after it was
// written.
func verifySum(path string) error {
	sums, err := readSums(path)
	if err != nil || sums == nil {
		return err
	}
	got, err := fileSum(path)
	if err != nil {
		return err
	}
	if !slices.Contains(sums, got) {
		return fmt.Errorf("its SHA-256 is not the one written beside it (%s): the file changed after it was written (corrupt?)", sidecar(path))
	}
	return nil
}

// union is a then the entries of b not in a, at most 4.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, h := range b {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out[:min(len(out), 4)]
}
