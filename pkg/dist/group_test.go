package dist

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// TestMain runs a worker of TestCollectives when the test binary is
// started as one (LWR_DIST_TEST_WORKER set).
func TestMain(m *testing.M) {
	if mode := os.Getenv("LWR_DIST_TEST_WORKER"); mode != "" {
		if err := worker(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// worker is one rank: it checks the collectives on tensors whose values
// depend on its rank and prints what it got.
func worker(mode string) error {
	env, _, err := FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	return libtorch.OnThread(func() error {
		g, err := Join(env, "gloo", 5*time.Second)
		if err != nil {
			return err
		}
		defer g.Close()
		r := float64(env.Rank)
		switch mode {
		case "collectives":
			// Two float tensors and an int64 one: three buckets by dtype,
			// and a bucket limit crossed by the large one.
			a := ts.MustOfSlice([]float64{r, 10 * r, 1}).MustView([]int64{3, 1}, true)
			big := ts.MustOnes([]int64{(BucketBytes / 4) + 10}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(r+1), true)
			n := ts.MustOfSlice([]int64{int64(env.Rank) + 1, 5})
			if err := g.AllReduceMean([]*ts.Tensor{a, big}); err != nil {
				return err
			}
			if err := g.AllReduceSum([]*ts.Tensor{n}); err != nil {
				return err
			}
			b := ts.MustOfSlice([]float64{r, r})
			if err := g.Broadcast([]*ts.Tensor{b}, 1); err != nil {
				return err
			}
			if err := g.Barrier(); err != nil {
				return err
			}
			bv := big.Float64Values()
			fmt.Printf("mean %v big %v %v sum %v bcast %v\n", a.Float64Values(), bv[0], bv[len(bv)-1], n.Int64Values(), b.Float64Values())
		case "sumgrad", "diebackward":
			// x = (r+1)·[1 2]; s = Σ_ranks x = [3 6]; each rank's loss Σ s²
			// has gradient 2s, summed over the ranks on its way back: 4s.
			x := ts.MustOfSlice([]float64{r + 1, 2 * (r + 1)}).MustSetRequiresGrad(true, true)
			sum, err := g.SumGrad(x)
			if err != nil {
				return err
			}
			if mode == "diebackward" && env.Rank == 1 {
				os.Exit(3) // gone between the forward and the backward pass
			}
			loss := sum.MustMul(sum, false).MustSum(gotch.Double, true)
			if err := libtorch.Catch(func() { loss.MustBackward() }); err != nil {
				return fmt.Errorf("backward (a failed collective: %v): %w", IsCollective(err), err)
			}
			fmt.Printf("sum %v grad %v\n", sum.Float64Values(), x.MustGrad(false).Float64Values())
		case "die":
			if env.Rank == 1 {
				os.Exit(3) // gone before the collective
			}
			x := ts.MustOfSlice([]float64{1})
			return g.AllReduceSum([]*ts.Tensor{x})
		case "hang":
			if env.Rank == 1 {
				time.Sleep(time.Minute)
			}
			x := ts.MustOfSlice([]float64{1})
			return g.AllReduceSum([]*ts.Tensor{x})
		}
		return nil
	})
}

// start runs world workers of mode and returns their commands, started.
func start(t *testing.T, mode string, world int) []*exec.Cmd {
	if !Available() {
		t.Skip("this build has no Gloo backend: install libgloo-dev and run make setup")
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for r := 0; r < world; r++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		env := Env{Rank: r, LocalRank: r, World: world, Addr: "127.0.0.1", Port: port}
		cmd.Env = append(append(os.Environ(), "LWR_DIST_TEST_WORKER="+mode), env.Environ()...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
	}
	return cmds
}

func output(cmd *exec.Cmd) string { return cmd.Stdout.(*strings.Builder).String() }

// TestCollectives: two processes over loopback (Gloo) average, sum and
// broadcast across dtypes and buckets.
func TestCollectives(t *testing.T) {
	cmds := start(t, "collectives", 2)
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, output(cmd))
		}
		want := "mean [0.5 5 1] big 1.5 1.5 sum [3 10] bcast [1 1]"
		if got := strings.TrimSpace(output(cmd)); got != want {
			t.Errorf("rank %d: %q, want %q", r, got, want)
		}
	}
}

// TestPeerFailure: a rank that dies, or hangs past the timeout, makes the
// other fail at once or within the timeout, naming its rank.
func TestPeerFailure(t *testing.T) {
	for _, mode := range []string{"die", "hang"} {
		t.Run(mode, func(t *testing.T) {
			began := time.Now()
			cmds := start(t, mode, 2)
			err := cmds[0].Wait()
			took := time.Since(began)
			if err == nil {
				t.Fatalf("rank 0 succeeded without its peer:\n%s", output(cmds[0]))
			}
			if !strings.Contains(output(cmds[0]), "rank 0 of 2") {
				t.Errorf("rank 0's error does not name it:\n%s", output(cmds[0]))
			}
			if took > 30*time.Second {
				t.Errorf("rank 0 took %v to fail (timeout 5 s)", took)
			}
			t.Logf("rank 0 failed after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(output(cmds[0])))
		})
	}
}

// TestSumGrad: the sum over 2 ranks and its gradient, summed back over the
// ranks; a rank that dies between the forward and the backward pass makes
// the other's backward fail as a collective.
func TestSumGrad(t *testing.T) {
	cmds := start(t, "sumgrad", 2)
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, output(cmd))
		}
		if got, want := strings.TrimSpace(output(cmd)), "sum [3 6] grad [12 24]"; got != want {
			t.Errorf("rank %d printed %q, want %q", r, got, want)
		}
	}
	cmds = start(t, "diebackward", 2)
	err := cmds[0].Wait()
	if err == nil {
		t.Fatalf("rank 0's backward succeeded without its peer:\n%s", output(cmds[0]))
	}
	if !strings.Contains(output(cmds[0]), "a failed collective: true") {
		t.Errorf("rank 0's backward failed, but not as a collective:\n%s", output(cmds[0]))
	}
	t.Logf("rank 0: %s", strings.TrimSpace(output(cmds[0])))
}

func TestIsCollective(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("rank 1 of 2: allreduce: %w: connection closed", ErrCollective), true},
		{fmt.Errorf("epoch 1 step 3: %w", fmt.Errorf("rank 0 of 2: barrier: %w: timed out", ErrCollective)), true},
		// A collective in autograd's backward pass reaches Go as libtorch's error.
		{fmt.Errorf("libtorch: backward: lwr_dist collective failed: Connection closed by peer"), true},
		{fmt.Errorf("libtorch: backward: shapes do not match"), false},
	} {
		if got := IsCollective(c.err); got != c.want {
			t.Errorf("IsCollective(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestSumGradOnItsOwn: a group of one sums over itself: the result is t,
// and the gradient flows back unchanged.
func TestSumGradOnItsOwn(t *testing.T) {
	err := libtorch.OnThread(func() error {
		x := ts.MustOfSlice([]float64{1, 2, 3}).MustSetRequiresGrad(true, true)
		s, err := Single().SumGrad(x)
		if err != nil {
			return err
		}
		loss := s.MustMul(s, false).MustSum(gotch.Double, true) // Σ s²: gradient 2x
		loss.MustBackward()
		got := x.MustGrad(false).Float64Values(true)
		for i, want := range []float64{2, 4, 6} {
			if got[i] != want {
				t.Errorf("gradient %v, want [2 4 6]", got)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
