package dist

import (
	"encoding/json"
	"fmt"
	"math"
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
		case "syncbn", "diebackward":
			in := syncBNInput(env.Rank)
			y, err := g.SyncBatchNorm(in.x, in.w, in.b, in.mean, in.variance, 0.1, 1e-5)
			if err != nil {
				return err
			}
			if mode == "diebackward" && env.Rank == 1 {
				os.Exit(3) // gone between the forward and the backward pass
			}
			loss := y.MustMul(in.coef, false).MustSum(gotch.Double, true)
			if err := libtorch.Catch(func() { loss.MustBackward() }); err != nil {
				return fmt.Errorf("backward (a failed collective: %v): %w", IsCollective(err), err)
			}
			b, _ := json.Marshal(in.result(y))
			fmt.Println(string(b))
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

// syncBNCase is one rank's share of a batch-norm layer: x [3,2,2,1], its
// parameters and running statistics, and the coefficients of a loss
// Σ y·coef; float64 values that depend on the rank.
type syncBNCase struct {
	x, w, b, mean, variance, coef *ts.Tensor
}

func syncBNInput(rank int) syncBNCase {
	vals := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	r := float64(rank)
	leaf := func(v []float64, shape ...int64) *ts.Tensor {
		return ts.MustOfSlice(v).MustView(shape, true).MustSetRequiresGrad(true, true)
	}
	return syncBNCase{
		x:        leaf(vals(12, func(i int) float64 { return (1 + r) * math.Sin(1+float64(i)+17*r) }), 3, 2, 2, 1),
		w:        leaf([]float64{1.5, 0.5}, 2),
		b:        leaf([]float64{0.1, -0.2}, 2),
		mean:     ts.MustOfSlice([]float64{0.2, -0.1}),
		variance: ts.MustOfSlice([]float64{1, 2}),
		coef:     ts.MustOfSlice(vals(12, func(i int) float64 { return math.Cos(float64(i) + 5*r) })).MustView([]int64{3, 2, 2, 1}, true),
	}
}

// syncBNResult is what a rank of TestSyncBatchNorm reports.
type syncBNResult struct {
	Y, DX, DW, DB, Mean, Variance []float64
}

func (c syncBNCase) result(y *ts.Tensor) syncBNResult {
	return syncBNResult{Y: y.Float64Values(), DX: c.x.MustGrad(false).Float64Values(), DW: c.w.MustGrad(false).Float64Values(),
		DB: c.b.MustGrad(false).Float64Values(), Mean: c.mean.Float64Values(), Variance: c.variance.Float64Values()}
}

// TestSyncBatchNorm: batch norm over 2 ranks' halves equals libtorch's
// batch norm over the whole batch in one process: outputs, gradients of x
// (each rank its half), of the weight and bias (summed over the ranks, as
// the gradient average does) and the running statistics, to 1e-12. A rank
// that dies between the forward and the backward pass makes the other's
// backward fail as a collective.
func TestSyncBatchNorm(t *testing.T) {
	cmds := start(t, "syncbn", 2)
	var got [2]syncBNResult
	for r, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, output(cmd))
		}
		if err := json.Unmarshal([]byte(output(cmd)), &got[r]); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, output(cmd))
		}
	}
	var want syncBNResult
	err := libtorch.OnThread(func() error {
		a, b := syncBNInput(0), syncBNInput(1)
		x := ts.MustCat([]*ts.Tensor{a.x, b.x}, 0)
		y := ts.MustBatchNorm(x, a.w, a.b, a.mean, a.variance, true, 0.1, 1e-5, false)
		y.MustMul(ts.MustCat([]*ts.Tensor{a.coef, b.coef}, 0), false).MustSum(gotch.Double, true).MustBackward()
		want = syncBNResult{Y: y.Float64Values(), DX: append(a.x.MustGrad(false).Float64Values(), b.x.MustGrad(false).Float64Values()...),
			DW: a.w.MustGrad(false).Float64Values(), DB: a.b.MustGrad(false).Float64Values(),
			Mean: a.mean.Float64Values(), Variance: a.variance.Float64Values()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want []float64) {
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
		}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("%s[%d] = %.15g, want %.15g (batch norm over the whole batch)", what, i, got[i], want[i])
			}
		}
	}
	half := len(want.Y) / 2
	for r := range got {
		check(fmt.Sprintf("rank %d: y", r), got[r].Y, want.Y[r*half:(r+1)*half])
		check(fmt.Sprintf("rank %d: dL/dx", r), got[r].DX, want.DX[r*half:(r+1)*half])
		check(fmt.Sprintf("rank %d: running mean", r), got[r].Mean, want.Mean)
		check(fmt.Sprintf("rank %d: running var", r), got[r].Variance, want.Variance)
	}
	sum := func(a, b []float64) []float64 {
		out := make([]float64, len(a))
		for i := range a {
			out[i] = a[i] + b[i]
		}
		return out
	}
	check("dL/dw summed over the ranks", sum(got[0].DW, got[1].DW), want.DW)
	check("dL/db summed over the ranks", sum(got[0].DB, got[1].DB), want.DB)

	cmds = start(t, "diebackward", 2)
	if err := cmds[0].Wait(); err == nil {
		t.Fatalf("rank 0's backward succeeded without its peer:\n%s", output(cmds[0]))
	}
	if !strings.Contains(output(cmds[0]), "a failed collective: true") {
		t.Errorf("rank 0's backward failed, but not as a collective:\n%s", output(cmds[0]))
	}
	t.Logf("rank 0 without its peer: %s", strings.TrimSpace(output(cmds[0])))
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
