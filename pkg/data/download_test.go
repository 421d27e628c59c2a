package data

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDownloadScript runs scripts/download_cifar.sh against a local
// "site" (a file:// URL) holding a tiny archive in the real layout.
func TestDownloadScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	site := t.TempDir()
	src := t.TempDir()
	writeCIFAR10(t, src, 10)
	archive := filepath.Join(site, "cifar-10-binary.tar.gz")
	if out, err := exec.Command("tar", "-czf", archive, "-C", src, "cifar-10-batches-bin").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	raw, _ := os.ReadFile(archive)
	sum := md5.Sum(raw)
	good := hex.EncodeToString(sum[:])
	script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "download_cifar.sh"))
	run := func(dir, md5sum string) (string, error) {
		cmd := exec.Command("bash", script, dir, "10")
		cmd.Env = append(os.Environ(), "CIFAR_BASE_URL=file://"+site, "CIFAR10_MD5="+md5sum)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	dest := t.TempDir()
	if out, err := run(dest, good); err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	d, err := LoadCIFAR(dest, 10, true)
	if err != nil || d.Len() != 50 {
		t.Fatalf("load after download: %v, %d images", err, d.Len())
	}

	bad := t.TempDir()
	out, err := run(bad, strings.Repeat("0", 32))
	if err == nil || !strings.Contains(out, "MD5 "+good+", want 000") {
		t.Errorf("wrong checksum: err %v, output %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(bad, "cifar-10-batches-bin")); err == nil {
		t.Error("a data set was unpacked despite the wrong checksum")
	}

	offline := exec.Command("bash", script, t.TempDir(), "10")
	offline.Env = append(os.Environ(), "CIFAR_BASE_URL=http://127.0.0.1:9")
	o, err := offline.CombinedOutput()
	if err == nil || !strings.Contains(string(o), "offline?") {
		t.Errorf("unreachable site: err %v, output %s", err, o)
	}
}
