package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lwr-go/lwr/pkg/dist"
)

// needGloo skips a test when this build has no data-parallel backend.
func needGloo(t *testing.T) {
	if !dist.Available() {
		t.Skip("this build has no Gloo backend: install libgloo-dev and run make setup")
	}
}

// ddpRun is smallRun trained by two worker processes.
func ddpRun(out, epochs string, extra ...string) []string {
	return smallRun(out, epochs, append([]string{"--nproc-per-node", "2", "--dist-timeout", "20s"}, extra...)...)
}

var workerPid = regexp.MustCompile(`rank (\d) of 2 is pid (\d+)`)

// startDDP starts a 2-worker run and returns it and its stderr.
func startDDP(t *testing.T, args []string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// TestDataParallelResume (issue 11): a 2-process run stopped by SIGINT to
// its launcher checkpoints once (rank 0), exits 130, and --resume with 2
// processes ends with exactly the metrics of an uninterrupted 2-process
// run.
func TestDataParallelResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar with two workers three times")
	}
	needGloo(t)
	bin := binary(t)
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole")
	if out, err := exec.Command(bin, ddpRun(whole, "4")...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	stopped := filepath.Join(dir, "stopped")
	cmd, stderr := startDDP(t, ddpRun(stopped, "4"))
	waitFor(t, 60*time.Second, "the first epoch", func() bool { return logLines(stopped) >= 1 })
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd); code != 130 {
		t.Fatalf("after SIGINT: exit %d, want 130\n%s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(stopped, "checkpoint.pt")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, ddpRun(stopped, "4", "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if w, g := summaryFinal(t, whole), summaryFinal(t, stopped); w != g {
		t.Errorf("resumed 2-process run: metrics differ:\n got %s\nwant %s", g, w)
	}
}

// TestDataParallelWorkerKilled (issue 11): kill -9 of one worker makes the
// launcher and the other worker exit non-zero well within --dist-timeout,
// the launcher naming the rank.
func TestDataParallelWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar with two workers")
	}
	needGloo(t)
	out := filepath.Join(t.TempDir(), "run")
	cmd, stderr := startDDP(t, ddpRun(out, "50"))
	var pids [2]int
	waitFor(t, 30*time.Second, "both workers started", func() bool {
		m := workerPid.FindAllStringSubmatch(stderr.String(), -1)
		for _, x := range m {
			r, _ := strconv.Atoi(x[1])
			pids[r], _ = strconv.Atoi(x[2])
		}
		return len(m) == 2
	})
	waitFor(t, 60*time.Second, "the first epoch", func() bool { return logLines(out) >= 1 })
	killedAt := time.Now()
	if err := syscall.Kill(pids[1], syscall.SIGKILL); err != nil { // our own child's child, by pid
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { done <- exitCode(t, cmd) }()
	select {
	case code := <-done:
		if code == 0 {
			t.Fatalf("the launcher succeeded with a worker killed:\n%s", stderr.String())
		}
		t.Logf("launcher exited %d after %v", code, time.Since(killedAt).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the launcher still runs 20 s after a worker was killed:\n%s", stderr.String())
	}
	if !bytes.Contains([]byte(stderr.String()), []byte("rank 1 (pid "+strconv.Itoa(pids[1])+") of 2 failed")) {
		t.Errorf("the launcher's error does not name rank 1:\n%s", stderr.String())
	}
	// Rank 0 is gone too: signalling it fails.
	if err := syscall.Kill(pids[0], 0); err == nil {
		t.Errorf("rank 0 (pid %d) still runs", pids[0])
	}
}

// TestDataParallelStartErrors (issue 11): a store port in use, or a
// master nobody serves, is an error line naming the rank and the address,
// within --dist-timeout.
func TestDataParallelStartErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs cmd/cifar")
	}
	needGloo(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	out := t.TempDir()
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"port in use", []string{"MASTER_PORT=" + port}, []string{"--nproc-per-node", "2"}, "rank 0 of 2: joining the job at 127.0.0.1:" + port + " (gloo): The server socket has failed to listen"},
		{"no master", []string{"WORLD_SIZE=2", "RANK=1", "MASTER_PORT=" + port, "MASTER_ADDR=127.0.0.2"}, nil, "rank 1 of 2: joining the job at 127.0.0.2:" + port},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary(t), smallRun(filepath.Join(out, c.name), "2", append([]string{"--dist-timeout", "3s"}, c.args...)...)...)
			cmd.Env = append(os.Environ(), c.env...)
			began := time.Now()
			b, err := cmd.CombinedOutput()
			if err == nil || !bytes.Contains(b, []byte(c.want)) {
				t.Errorf("err %v, output:\n%s\nwant a line with %q", err, b, c.want)
			}
			if d := time.Since(began); d > 20*time.Second {
				t.Errorf("took %v with --dist-timeout 3s", d)
			}
		})
	}
}

// TestTorchrun (issue 11): PyTorch's own launcher (Debian's python3-torch:
// torchrun with its agent store) starts two workers of cifar, which train
// together; rank 0 writes the run.
func TestTorchrun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs torchrun")
	}
	needGloo(t)
	py := torchrunPython(t)
	out := filepath.Join(t.TempDir(), "run")
	port, err := dist.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// --redirects/--tee: Debian's torchrun 1.13 does not start under
	// Python 3.11 without them.
	args := append([]string{"-m", "torch.distributed.run", "--redirects=1", "--tee=1", "--nnodes", "1", "--nproc_per_node", "2",
		"--master_port", strconv.Itoa(port), "--no_python", binary(t)}, smallRun(out, "2")...)
	cmd := exec.Command(py, args...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torchrun: %v\n%s", err, b)
	}
	s := summaryFinal(t, out)
	if !strings.Contains(s, "top1") {
		t.Errorf("summary: %s", s)
	}
	if strings.Count(string(b), "== synthetic") != 1 {
		t.Errorf("want one run line (rank 0's):\n%s", b)
	}
}

// torchrunPython is a python3 whose PyTorch is the one this build links
// (torchrun's store and ours must speak the same version): the pip
// environment the libtorch came from, or Debian's python3-torch for
// Debian's libtorch. It skips the test when there is none.
func torchrunPython(t *testing.T) string {
	b, err := os.ReadFile("../../third_party/gotch/.lwr-setup.json")
	if err != nil {
		t.Skipf("no setup stamp: %v", err)
	}
	var stamp struct {
		Libtorch struct{ Root, Version string }
	}
	if err := json.Unmarshal(b, &stamp); err != nil {
		t.Fatal(err)
	}
	want := stamp.Libtorch.Version
	if i := strings.LastIndex(want, "."); i > 0 {
		want = want[:i] // major.minor
	}
	for _, py := range []string{filepath.Join(stamp.Libtorch.Root, "..", "..", "..", "..", "bin", "python3"), "/usr/bin/python3"} {
		out, err := exec.Command(py, "-c", "import torch.distributed.run, torch; print(torch.__version__)").Output()
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), want) {
			return py
		}
	}
	t.Skipf("no python3 with torchrun of PyTorch %s, the libtorch of this build", want)
	return ""
}
