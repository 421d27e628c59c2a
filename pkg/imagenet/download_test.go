package imagenet

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeSplits writes ImageNet-LT-shaped split files into dir: train with
// 1,280 images in class 0 and 114 or 115 in the others (115,846 in all),
// val 20 and test 50 per class. edit may change a file's text.
func writeSplits(t *testing.T, dir string, edit func(name, text string) string) {
	t.Helper()
	lists := map[string]func(c int) (n int, prefix string){
		"train": func(c int) (int, string) {
			switch {
			case c == 0:
				return 1280, "train"
			case c <= 680:
				return 115, "train"
			}
			return 114, "train"
		},
		"val":  func(int) (int, string) { return 20, "train" },
		"test": func(int) (int, string) { return 50, "val" },
	}
	for name, per := range lists {
		var b strings.Builder
		for c := range Classes {
			n, prefix := per(c)
			for i := range n {
				fmt.Fprintf(&b, "%s/n%08d/n%08d_%d.JPEG %d\n", prefix, c, c, i, c)
			}
		}
		text := b.String()
		if edit != nil {
			text = edit(name, text)
		}
		if err := os.WriteFile(filepath.Join(dir, Split(name)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDownloadScript runs scripts/download_imagenet_lt.sh against a local
// "site" (a file:// URL) holding split files of the real size and format.
func TestDownloadScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "download_imagenet_lt.sh"))
	site := t.TempDir()
	writeSplits(t, site, nil)
	digest := func(name string) string {
		b, err := os.ReadFile(filepath.Join(site, Split(name)))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x", sha256.Sum256(b))
	}
	// These generated lists pin their own digests; the real val list's
	// default pin would (rightly) refuse them.
	pins := []string{"IMAGENET_LT_SHA256_TRAIN=" + digest("train"), "IMAGENET_LT_SHA256_VAL=" + digest("val"), "IMAGENET_LT_SHA256_TEST="}
	run := func(dest, base string, env ...string) (string, error) {
		cmd := exec.Command("bash", script, dest)
		cmd.Env = append(append(append(os.Environ(), "IMAGENET_LT_BASE_URL="+base), pins...), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	dest := t.TempDir()
	if out, err := run(dest, "file://"+site); err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	for _, name := range []string{"train", "val", "test"} {
		a, _ := os.ReadFile(filepath.Join(site, Split(name)))
		b, err := os.ReadFile(filepath.Join(dest, Split(name)))
		if err != nil || string(a) != string(b) {
			t.Fatalf("%s: not copied intact (%v)", name, err)
		}
	}
	if out, err := run(dest, "file://"+site); err != nil || strings.Count(out, "already there (checked)") != 3 ||
		!strings.Contains(out, "ImageNet_LT_test.txt: sha256 "+digest("test")+" (no pinned digest") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	// A pinned digest that differs refuses the file, kept as .bad.
	wrong := t.TempDir()
	out, err := run(wrong, "file://"+site, "IMAGENET_LT_SHA256_TRAIN="+strings.Repeat("0", 64))
	if err == nil || !strings.Contains(out, "sha256 "+digest("train")+", want 000") || !strings.Contains(out, "is not ImageNet-LT's list") {
		t.Errorf("wrong pinned digest: err %v, output:\n%s", err, out)
	}
	if bad, _ := filepath.Glob(filepath.Join(wrong, "*.bad")); len(bad) != 1 {
		t.Errorf("wrong pinned digest: want the file kept as .bad, have %v", bad)
	}
	// The real val list's default pin refuses a list that only looks right.
	cmd := exec.Command("bash", script, t.TempDir())
	cmd.Env = append(os.Environ(), "IMAGENET_LT_BASE_URL=file://"+site)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "want 9af7ba68") {
		t.Errorf("default val pin: err %v, output:\n%s", err, out)
	}

	cases := []struct {
		name string
		edit func(name, text string) string
		want string
	}{
		{"a class short", func(name, text string) string {
			if name == "test" {
				return strings.Replace(text, "val/n00000007/n00000007_3.JPEG 7\n", "", 1)
			}
			return text
		}, "ImageNet_LT_test.txt.part: 49999 images, want 50000"},
		{"a label out of range", func(name, text string) string {
			if name == "train" {
				return strings.Replace(text, "n00000003_0.JPEG 3\n", "n00000003_0.JPEG 1000\n", 1)
			}
			return text
		}, `label in 0..999, got "train/n00000003/n00000003_0.JPEG 1000"`},
		{"an HTML page", func(name, text string) string {
			if name == "val" {
				return "<!DOCTYPE html>\n<html>sign in</html>\n"
			}
			return text
		}, `ImageNet_LT_val.txt.part:1: want "path label"`},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			site := t.TempDir()
			writeSplits(t, site, k.edit)
			dest := t.TempDir()
			out, err := run(dest, "file://"+site)
			if err == nil || !strings.Contains(out, k.want) || !strings.Contains(out, "is not ImageNet-LT's list") {
				t.Errorf("err %v, output:\n%s\nwant %q", err, out, k.want)
			}
			bad, _ := filepath.Glob(filepath.Join(dest, "*.bad"))
			if len(bad) != 1 {
				t.Errorf("want the rejected file kept as .bad, have %v", bad)
			}
		})
	}

	out, err = run(t.TempDir(), "http://127.0.0.1:9")
	if err == nil || !strings.Contains(out, "offline?") {
		t.Errorf("unreachable site: err %v, output %s", err, out)
	}
}
