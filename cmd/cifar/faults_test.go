package main

// The fault-injection cases of RELIABILITY.md that need the binary:
// signals and their exit codes, and kill -9 at random points.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwr-go/lwr/pkg/safetensors"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/cifar once per test process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lwr-cifar-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "cifar")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
}

// smallRun is a synthetic run of a few seconds per epoch.
func smallRun(out string, epochs string, extra ...string) []string {
	return append([]string{"--dataset", "synthetic", "--device", "cpu", "--threads", "1", "--epochs", epochs, "--warmup", "1",
		"--batch-size", "32", "--eval-every", "1", "--quiet", "--out", out}, extra...)
}

// logLines counts the epochs in dir's log.jsonl.
func logLines(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	return bytes.Count(b, []byte("\n"))
}

// waitFor polls cond every 10 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// lockedBuffer is a bytes.Buffer safe for a process writing while the
// test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSignalExitCodes (case 7): SIGINT and SIGTERM stop the run with a
// checkpoint and exit 130 and 143 (not 0, as a finished run); a second
// signal exits at once; what is left on disk resumes.
func TestSignalExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	bin := binary(t)
	out := filepath.Join(t.TempDir(), "run")
	start := func(args []string) (*exec.Cmd, *lockedBuffer) {
		cmd := exec.Command(bin, args...)
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, stderr
	}
	for i, k := range []struct {
		sig    syscall.Signal
		resume bool
		want   int
	}{
		{syscall.SIGINT, false, 130},
		{syscall.SIGTERM, true, 143},
	} {
		var extra []string
		if k.resume {
			extra = []string{"--resume"}
		}
		lines := logLines(out)
		cmd, stderr := start(smallRun(out, "40", extra...))
		waitFor(t, 2*time.Minute, "an epoch", func() bool { return logLines(out) > lines })
		cmd.Process.Signal(k.sig)
		if got := exitCode(t, cmd); got != k.want {
			t.Errorf("round %d, %v: exit %d, want %d\n%s", i, k.sig, got, k.want, stderr.String())
		}
		if !strings.Contains(stderr.String(), "stopping at the next step") {
			t.Errorf("stderr %q: want the interrupt explained", stderr.String())
		}
	}
	// Whatever the signals left is whole: it resumes (an epoch, then stopped again).
	lines := logLines(out)
	cmd, stderr := start(smallRun(out, "40", "--resume"))
	waitFor(t, 2*time.Minute, "an epoch after the resume", func() bool { return logLines(out) > lines })
	cmd.Process.Signal(syscall.SIGINT)
	if got := exitCode(t, cmd); got != 130 {
		t.Errorf("resume after the signals: exit %d\n%s", got, stderr.String())
	}

	// A second signal exits at once. ResNet-50 on one batch of the whole
	// set makes a step last seconds, so that the second signal comes while
	// the first still waits for the step to end: the first is sent a moment
	// after an epoch's line (past its checkpoint, into the next step), the
	// second once the first was handled (two pending signals of one kind
	// would merge into one).
	double := filepath.Join(t.TempDir(), "double")
	cmd, stderr = start(smallRun(double, "40", "--batch-size", "4096", "--model", "resnet50"))
	waitFor(t, 2*time.Minute, "an epoch", func() bool { return logLines(double) > 0 })
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, 30*time.Second, "the first signal handled", func() bool { return strings.Contains(stderr.String(), "stopping at the next step") })
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	got := exitCode(t, cmd)
	if got != 130 {
		t.Errorf("two signals: exit %d, want 130\n%s", got, stderr.String())
	}
	if strings.Contains(stderr.String(), "checkpoint written") {
		t.Skipf("the step ended before the second signal arrived (machine too fast for this timing): %q", stderr.String())
	}
	if !strings.Contains(stderr.String(), "again: exiting now") {
		t.Errorf("second signal: stderr %q", stderr.String())
	}
	if d := time.Since(sent); d > 3*time.Second {
		t.Errorf("second signal: exited after %v", d)
	}
}

// TestKill9AtRandomPoints (issue 10): a run killed with SIGKILL at ten
// random moments, resumed after each, ends with exactly the metrics of an
// uninterrupted run.
func TestKill9AtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar a dozen times")
	}
	bin := binary(t)
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole")
	start := time.Now()
	if out, err := exec.Command(bin, smallRun(whole, "10")...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	span := time.Since(start)
	killed := filepath.Join(dir, "killed")
	r := rand.New(rand.NewPCG(10, 10)) // the same ten points every time
	var points []string
	for k := 0; k < 10; k++ {
		args := smallRun(killed, "10")
		if _, err := os.Stat(filepath.Join(killed, "config.json")); err == nil {
			args = append(args, "--resume")
		}
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A point in the first 30% of a whole run's time, from the start
		// of this process: past its start-up, into its training.
		at := time.Duration(float64(span) * (0.05 + 0.25*r.Float64()))
		done := make(chan int, 1)
		go func() { done <- exitCode(t, cmd) }()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("kill %d: the run failed before the kill (exit %d):\n%s", k+1, code, stderr.String())
			}
			points = append(points, "finished first")
		case <-time.After(at):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			points = append(points, fmt.Sprintf("%v (%d epochs logged)", at.Round(time.Millisecond), logLines(killed)))
		}
	}
	t.Logf("kill points: %s", strings.Join(points, "; "))
	if out, err := exec.Command(bin, smallRun(killed, "10", "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, out)
	}
	w, g := summaryFinal(t, whole), summaryFinal(t, killed)
	if w != g {
		t.Errorf("after ten kills: metrics differ:\n got %s\nwant %s", g, w)
	}
	if tmp, _ := filepath.Glob(filepath.Join(killed, ".*.tmp*")); len(tmp) > 0 {
		t.Errorf("temporary files left after the final run: %v", tmp)
	}
}

func summaryFinal(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ Final json.RawMessage }
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return string(s.Final)
}

// TestExportInitFrom (issue 13): --export writes the run's network in
// PyTorch's names (no LWR projection, num_batches_tracked beside each batch
// norm); --init-from starts a new run from it: with a learning rate of
// ~0 its weights stay the exported ones.
func TestExportInitFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	bin := binary(t)
	dir := t.TempDir()
	first, file := filepath.Join(dir, "first"), filepath.Join(dir, "net.safetensors")
	if out, err := exec.Command(bin, smallRun(first, "2")...).CombinedOutput(); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, smallRun(first, "2", "--export", file)...).CombinedOutput(); err != nil {
		t.Fatalf("--export: %v\n%s", err, out)
	}
	exported, meta, err := safetensors.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := exported["layer3.4.bn2.num_batches_tracked"]; !ok || meta["model"] != "resnet32" {
		t.Errorf("export lacks PyTorch's num_batches_tracked or the model name (meta %v)", meta)
	}
	for name := range exported {
		if strings.HasPrefix(name, "lwr.") {
			t.Errorf("export holds the LWR projection: %s", name)
		}
	}
	second, again := filepath.Join(dir, "second"), filepath.Join(dir, "again.safetensors")
	args := smallRun(second, "1", "--init-from", file, "--lr", "1e-30", "--warmup", "0")
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("--init-from: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, append(args, "--export", again)...).CombinedOutput(); err != nil {
		t.Fatalf("--export of the second run: %v\n%s", err, out)
	}
	got, _, err := safetensors.Read(again)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"conv1.weight", "layer2.0.conv2.weight", "linear.weight", "linear.bias"} {
		a, b := exported[name].F32, got[name].F32
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%s: %d and %d values", name, len(a), len(b))
		}
		for i := range a {
			if d := a[i] - b[i]; d > 1e-6 || d < -1e-6 {
				t.Errorf("%s[%d]: %v after --init-from, exported %v", name, i, b[i], a[i])
				break
			}
		}
	}
	if out, err := exec.Command(bin, smallRun(filepath.Join(dir, "bad"), "1", "--warmup", "0", "--init-from", filepath.Join(dir, "missing.safetensors"))...).CombinedOutput(); err == nil || !strings.Contains(string(out), "--init-from") {
		t.Errorf("--init-from a missing file: err %v, output %s", err, out)
	}
}

// TestEvalCheckpoint (issue 13): --eval evaluates a run's checkpoint on
// its test set: the same top-1 as the run's summary, a prediction per test
// image, per-class precision and recall, a confusion matrix.
func TestEvalCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	bin := binary(t)
	run := filepath.Join(t.TempDir(), "run")
	if out, err := exec.Command(bin, smallRun(run, "2")...).CombinedOutput(); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--eval", run, "--device", "cpu").CombinedOutput()
	if err != nil {
		t.Fatalf("--eval: %v\n%s", err, out)
	}
	var ev struct {
		Metrics   struct{ Top1 float64 }
		Precision []any
		Recall    []any
	}
	b, err := os.ReadFile(filepath.Join(run, "eval", "eval.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	var sum struct{ Final struct{ Top1 float64 } }
	b, _ = os.ReadFile(filepath.Join(run, "summary.json"))
	json.Unmarshal(b, &sum)
	if ev.Metrics.Top1 != sum.Final.Top1 || len(ev.Precision) != 10 || len(ev.Recall) != 10 {
		t.Errorf("--eval: top-1 %v (summary %v), %d precisions, %d recalls", ev.Metrics.Top1, sum.Final.Top1, len(ev.Precision), len(ev.Recall))
	}
	preds, err := os.ReadFile(filepath.Join(run, "eval", "predictions.csv"))
	if err != nil || strings.Count(string(preds), "\n") != 1+200 || !strings.HasPrefix(string(preds), "index,label,prediction,top5,confidence\n") {
		t.Errorf("predictions.csv: %d lines (err %v), want a header and 200", strings.Count(string(preds), "\n"), err)
	}
	if _, err := os.Stat(filepath.Join(run, "eval", "confusion.png")); err != nil {
		t.Error(err)
	}
	if out, err := exec.Command(bin, "--eval", filepath.Join(run, "nothing")).CombinedOutput(); err == nil || !strings.Contains(string(out), "--eval") {
		t.Errorf("--eval of a missing run: err %v, output %s", err, out)
	}
}

// maxRSS is the peak resident memory of the finished process cmd ran, in
// bytes.
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss * 1024 // kilobytes on Linux
	}
	return 0
}

// peakLimit is the most peak resident memory a fault may cost a process
// whose fault-free twin peaked at baseline: 32 MiB more (runs of one
// command vary by some 10 MiB), and 256 MiB in
// all where the twin stays below 240 MiB (Debian's CPU libtorch: 170 MiB
// for --eval; PyPI's CUDA build maps 370 MiB before doing anything, and a
// training run takes about 300 MiB on either).
func peakLimit(baseline int64) int64 {
	if baseline < 240<<20 {
		return 256 << 20
	}
	return baseline + 32<<20
}

// TestDamagedCheckpointsPeakMemory (issue 26, cases 6 and 8, measured in
// a process of their own): --eval and --resume over a checkpoint.pt whose
// bytes changed, or that is a FIFO, say so in one line and go on from
// checkpoint.prev.pt (--resume) or stop (--eval), their peak resident
// memory no higher than the same command's on an intact run (--eval) or
// with checkpoint.pt removed (--resume); see peakLimit.
func TestDamagedCheckpointsPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	bin := binary(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if out, err := exec.Command(bin, smallRun(base, "2")...).CombinedOutput(); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	baseline := map[string]int64{}
	for _, tc := range []struct {
		name   string
		damage func(ckpt string) error
		want   string
	}{
		// The baselines: --eval of the intact run, and the resume from
		// checkpoint.prev.pt with checkpoint.pt gone.
		{"intact", func(string) error { return nil }, "written to"},
		{"removed", os.Remove, "resuming from"},
		{"corrupted", func(ckpt string) error {
			b, err := os.ReadFile(ckpt)
			if err != nil {
				return err
			}
			for i := len(b) / 2; i < len(b)/2+1000; i++ {
				b[i] ^= 0x5a
			}
			return os.WriteFile(ckpt, b, 0o644)
		}, "changed after it was written"},
		{"fifo", func(ckpt string) error {
			if err := os.Remove(ckpt); err != nil {
				return err
			}
			return syscall.Mkfifo(ckpt, 0o600)
		}, "not a regular file"},
	} {
		for _, mode := range []string{"--eval", "--resume"} {
			if (tc.name == "removed" && mode == "--eval") || (tc.name == "intact" && mode == "--resume") {
				continue
			}
			t.Run(tc.name+mode, func(t *testing.T) {
				run := filepath.Join(dir, tc.name+mode)
				if out, err := exec.Command("cp", "-r", base, run).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
				if err := tc.damage(filepath.Join(run, "checkpoint.pt")); err != nil {
					t.Fatal(err)
				}
				args := smallRun(run, "2", "--resume")
				if mode == "--eval" {
					args = []string{"--eval", run, "--device", "cpu", "--threads", "1"}
				}
				cmd := exec.Command(bin, args...)
				var out lockedBuffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(120 * time.Second):
					cmd.Process.Kill()
					<-done
					t.Fatalf("%s hung:\n%s", mode, out.String())
				}
				if !strings.Contains(out.String(), tc.want) {
					t.Errorf("%s: %v, output %q; want it to say %q", mode, err, out.String(), tc.want)
				}
				if mode == "--resume" && (err != nil || logLines(run) != 2 || !strings.Contains(out.String(), "resuming from")) {
					t.Errorf("--resume: %v, %d epochs logged; want the run finished from checkpoint.prev.pt\n%s", err, logLines(run), out.String())
				}
				rss := maxRSS(cmd)
				if tc.name == "intact" || tc.name == "removed" {
					baseline[mode] = rss
				}
				if limit := peakLimit(baseline[mode]); rss > limit || rss == 0 {
					t.Errorf("%s: peak resident memory %d MiB, want ≤ %d", mode, rss>>20, limit>>20)
				} else {
					t.Logf("%s: peak resident memory %d MiB", mode, rss>>20)
				}
			})
		}
	}
}

// TestLogsToAFile (issue 27): with stderr a file, as under nohup or a batch
// scheduler, a run prints a plain line per epoch and per evaluation (it
// printed nothing until the final table), and its folder keeps them in
// train.log.
func TestLogsToAFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	logFile, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := slices.DeleteFunc(smallRun(run, "2"), func(a string) bool { return a == "--quiet" })
	cmd := exec.Command(binary(t), args...)
	cmd.Stderr = logFile
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, _ := os.ReadFile(logFile.Name())
	kept, _ := os.ReadFile(filepath.Join(run, "train.log"))
	for _, want := range []string{"epoch 1/2 done  loss ", "eval  1/2  top-1 ", "epoch 2/2 done  loss ", "eval  2/2  top-1 "} {
		if !bytes.Contains(got, []byte(want)) || !bytes.Contains(kept, []byte(want)) {
			t.Errorf("no %q in stderr or train.log:\n%s\n--\n%s", want, got, kept)
		}
	}
	if bytes.ContainsAny(got, "\r\033") {
		t.Errorf("terminal control characters in a file:\n%q", got)
	}
}

// TestConfigRerun (issue 27): --config with a run's config.json trains
// that run again: the same summary.json (the final metrics, the training
// counts, every setting but the folder), in a new --out. Flags beside it
// override; a file that is not a config.json is one line naming it.
func TestConfigRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	bin := binary(t)
	dir := t.TempDir()
	first, again := filepath.Join(dir, "first"), filepath.Join(dir, "again")
	if out, err := exec.Command(bin, smallRun(first, "2", "--seed", "3", "--lwr-tau", "0.2")...).CombinedOutput(); err != nil {
		t.Fatalf("train: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "--config", filepath.Join(first, "config.json"), "--out", again, "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("--config: %v\n%s", err, out)
	}
	summary := func(dir string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		delete(s, "seconds")
		cfg := s["config"].(map[string]any)
		delete(cfg, "out")
		delete(cfg, "provenance")
		return s
	}
	a, b := summary(first), summary(again)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the rerun's summary.json differs:\n%v\n%v", a, b)
	}
	if a["config"].(map[string]any)["seed"] != 3.0 {
		t.Errorf("the first run's seed is %v, want 3", a["config"].(map[string]any)["seed"])
	}
	// Without --out, --config means the file's folder: refused as another
	// run's, continued with --resume.
	if out, err := exec.Command(bin, "--config", filepath.Join(first, "config.json"), "--quiet").CombinedOutput(); err == nil || !strings.Contains(string(out), "holds another run") {
		t.Errorf("--config without --out: %v, %s; want the run's folder refused", err, out)
	}
	if out, err := exec.Command(bin, "--config", filepath.Join(first, "config.json"), "--resume", "--quiet").CombinedOutput(); err != nil {
		t.Errorf("--config --resume: %v\n%s", err, out)
	}
	// Flags beside --config override it.
	cmd := exec.Command(bin, "--config", filepath.Join(first, "config.json"), "--out", filepath.Join(dir, "other"), "--lwr-tau", "0.5", "--epochs", "1", "--quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("--config with flags: %v\n%s", err, out)
	}
	other, _ := os.ReadFile(filepath.Join(dir, "other", "config.json"))
	if !strings.Contains(string(other), `"Tau": 0.5`) || !strings.Contains(string(other), `"seed": 3`) || !strings.Contains(string(other), `"epochs": 1`) {
		t.Errorf("--config with --lwr-tau 0.5 --epochs 1: %s", other)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"dataset": "synthetic", "lerning_rate": 0.1}`), 0o644)
	for _, tc := range []struct{ file, want string }{
		{bad, `--config ` + bad + `: json: unknown field "lerning_rate"`},
		{filepath.Join(dir, "none.json"), "--config: open " + filepath.Join(dir, "none.json")},
		{first, "--config: " + first + ": not a regular file"},
	} {
		out, err := exec.Command(bin, "--config", tc.file).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
			t.Errorf("--config %s: %v, %q; want one line with %q", tc.file, err, out, tc.want)
		}
	}
}

// TestFaultsPeakMemory (issue 26, cases 1, 7, 9 and 11, measured in a
// process of their own): refused flags stop no higher than --help (see
// peakLimit); a run whose disk fills at its first checkpoint stops no
// higher than the same run on a disk with room.
func TestFaultsPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	bin := binary(t)
	dir := t.TempDir()
	peak := func(args ...string) (int64, string, error) {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		return maxRSS(cmd), string(out), err
	}
	help, _, _ := peak("--help")
	for _, args := range [][]string{{"--threads", "1000"}, {"--lr", "inf"}, {"--seeds", "1,1"}, {"--threads", "-1"}} {
		rss, out, err := peak(append(args, "--dataset", "synthetic", "--out", filepath.Join(dir, "refused"))...)
		if err == nil || rss == 0 || rss > peakLimit(help) {
			t.Errorf("%v: %v, peak %d MiB (--help %d; want refused, ≤ %d):\n%s", args, err, rss>>20, help>>20, peakLimit(help)>>20, out)
		}
	}
	roomy, out, err := peak(smallRun(filepath.Join(dir, "roomy"), "2")...)
	if err != nil {
		t.Fatalf("the run with room: %v\n%s", err, out)
	}
	if os.Geteuid() != 0 {
		t.Skip("the full disk: mounting a small tmpfs needs root (CI runs as root)")
	}
	full := filepath.Join(dir, "full")
	os.Mkdir(full, 0o755)
	if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	defer syscall.Unmount(full, 0)
	rss, out, err := peak(smallRun(filepath.Join(full, "run"), "2")...)
	if err == nil || !strings.Contains(out, "no space left on device") || rss > peakLimit(roomy) {
		t.Errorf("the full disk: %v, peak %d MiB (the run with room: %d); want ENOSPC said and no more memory:\n%s", err, rss>>20, roomy>>20, out)
	}
	t.Logf("peak resident memory: full disk %d MiB, with room %d MiB", rss>>20, roomy>>20)
}
