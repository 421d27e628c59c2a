package cli

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lwr-go/lwr/pkg/dist"
	"github.com/lwr-go/lwr/pkg/train"
)

// launch is --nproc-per-node N: it starts N workers of this command on
// this machine with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT) and the same flags, forwards SIGINT and
// SIGTERM to them, and fails as a whole: when one worker fails, the others
// are stopped (SIGTERM, then SIGKILL after grace) and the error names it.
// Rank 0 prints as the command would; the others' stderr lines carry
// their rank, their stdout is dropped (rank 0 says the same).
func launch(name string, args []string, n int, grace time.Duration) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--nproc-per-node: %w", err)
	}
	var port int
	if v := os.Getenv("MASTER_PORT"); v != "" {
		if port, err = strconv.Atoi(v); err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("MASTER_PORT=%q: want an integer in 1..65535", v)
		}
	} else if port, err = dist.FreePort(); err != nil {
		return fmt.Errorf("--nproc-per-node: no free port on the loopback for the store: %w", err)
	}
	addr := cmp.Or(os.Getenv("MASTER_ADDR"), "127.0.0.1")
	child := withoutFlag(args, "nproc-per-node")
	if !hasFlag(child, "threads") {
		// The cores split between the workers, as --parallel does.
		child = append(child, "--threads", strconv.Itoa(max(1, runtime.NumCPU()/n)))
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	type exit struct {
		rank int
		err  error
	}
	exits := make(chan exit, n)
	cmds := make([]*exec.Cmd, n)
	var out sync.WaitGroup
	for r := 0; r < n; r++ {
		cmd := exec.Command(exe, child...)
		cmd.Env = append(workerEnviron(), dist.Env{Rank: r, LocalRank: r, World: n, Addr: addr, Port: port}.Environ()...)
		cmd.Stdin = nil
		if r == 0 {
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		} else {
			pipe, err := cmd.StderrPipe()
			if err != nil {
				return err
			}
			out.Add(1)
			go func(r int, pipe io.Reader) {
				defer out.Done()
				s := bufio.NewScanner(pipe)
				for s.Scan() {
					fmt.Fprintf(os.Stderr, "[rank %d] %s\n", r, s.Text())
				}
			}(r, pipe)
		}
		if err := cmd.Start(); err != nil {
			for _, c := range cmds[:r] {
				c.Process.Kill()
			}
			return fmt.Errorf("--nproc-per-node: starting rank %d: %w", r, err)
		}
		cmds[r] = cmd
		fmt.Fprintf(os.Stderr, "%s: rank %d of %d is pid %d (store %s:%d)\n", name, r, n, cmd.Process.Pid, addr, port)
		go func(r int, cmd *exec.Cmd) {
			if r > 0 {
				out.Wait() // the pipe drained before Wait closes it
			}
			exits <- exit{r, cmd.Wait()}
		}(r, cmd)
	}
	var signalled syscall.Signal
	var failed *exit
	stopping := false
	var killTimer <-chan time.Time
	exited := make([]bool, n)
	stop := func(s syscall.Signal) {
		for r, c := range cmds {
			if !exited[r] {
				c.Process.Signal(s) // only the workers this launcher started, by pid
			}
		}
	}
	for left := n; left > 0; {
		select {
		case s := <-sigs:
			signalled = s.(syscall.Signal)
			stop(signalled) // a second signal is forwarded too: the workers exit at once
		case e := <-exits:
			left--
			exited[e.rank] = true
			if e.err != nil && failed == nil && signalled == 0 {
				failed = &e
			}
			if failed != nil && !stopping {
				stopping = true
				stop(syscall.SIGTERM)
				killTimer = time.After(grace)
			}
		case <-killTimer:
			stop(syscall.SIGKILL)
		}
	}
	switch {
	case failed != nil:
		return fmt.Errorf("rank %d (pid %d) of %d failed (%v); stopped the other workers", failed.rank, cmds[failed.rank].Process.Pid, n, failed.err)
	case signalled != 0:
		return &SignalError{Signal: signalled, Err: train.ErrInterrupted}
	}
	return nil
}

// workerEnviron is this process's environment without the variables the
// launcher sets, nor torchrun's agent-store flag (rank 0 serves the store;
// libtorch 2.x refuses the flag set empty).
func workerEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// withoutFlag is args without --name (as "--name V" or "--name=V").
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--"+name {
			i++
			continue
		}
		if strings.HasPrefix(a, "--"+name+"=") {
			continue
		}
		out = append(out, a)
	}
	return out
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}
