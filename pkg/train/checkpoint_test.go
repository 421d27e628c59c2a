package train

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/optim"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// BenchmarkSaveCheckpoint: one epoch-end checkpoint (weights, batch-norm
// statistics and momentum) of ResNet-32 at 100 classes and ResNet-50 at
// 1,000: "write" is all of it (copied, written, fsynced and renamed into
// place, the previous one kept), "snapshot" the copy alone, which is what
// the training thread waits for now that the rest runs beside the next
// epoch. It writes in the benchmark's temporary folder: time it where that
// is a disk, not memory (TMPDIR).
func BenchmarkSaveCheckpoint(b *testing.B) {
	for _, k := range []struct {
		model   string
		classes int64
	}{
		{"resnet32", 100},
		{"resnet50", 1000},
	} {
		b.Run(k.model, func(b *testing.B) {
			vs := nn.NewVarStore(gotch.CPU)
			var err error
			if k.model == "resnet32" {
				_, err = resnet.ResNet32(vs.Root(), resnet.Options{Classes: k.classes, InChannels: 3})
			} else {
				_, err = resnet.ResNet50(vs.Root(), resnet.Options{Classes: k.classes, InChannels: 3})
			}
			if err != nil {
				b.Fatal(err)
			}
			_, params := trainableParams(vs)
			opt, err := optim.NewSGD(params, 0.1, 0.9, 5e-4, false)
			if err != nil {
				b.Fatal(err)
			}
			bufs := make([]*ts.Tensor, len(params))
			for i, p := range params {
				bufs[i] = p.MustZerosLike(false)
			}
			if err := opt.SetBuffers(bufs); err != nil {
				b.Fatal(err)
			}
			path := filepath.Join(b.TempDir(), CheckpointFile)
			b.Run("write", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if err := saveCheckpoint(path, vs, opt, State{Epoch: i}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("snapshot", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					s, err := takeSnapshot(path, vs, opt, State{Epoch: i})
					if err != nil {
						b.Fatal(err)
					}
					s.free()
				}
			})
		})
	}
}

// TestSnapshotIsACopy: a checkpoint written from a snapshot holds the
// weights and momentum of the moment the snapshot was taken, however the
// run's tensors change while it is written (training goes on meanwhile).
func TestSnapshotIsACopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), CheckpointFile)
	err := libtorch.OnThread(func() error {
		vs := nn.NewVarStore(gotch.CPU)
		w := vs.Root().MustOnes("w", []int64{2, 3})
		opt, err := optim.NewSGD([]*ts.Tensor{w}, 0.1, 0.9, 0, false)
		if err != nil {
			return err
		}
		if err := opt.SetBuffers([]*ts.Tensor{ts.MustFull([]int64{2, 3}, ts.FloatScalar(0.5), gotch.Float, gotch.CPU)}); err != nil {
			return err
		}
		s, err := takeSnapshot(path, vs, opt, State{Epoch: 4})
		if err != nil {
			return err
		}
		defer s.free()
		libtorch.NoGrad(func() {
			w.MustAddScalar_(ts.FloatScalar(1))
			opt.Buffers()[0].MustAddScalar_(ts.FloatScalar(1))
		})
		if err := s.write(path); err != nil {
			return err
		}
		st, named, err := readCheckpointState(path)
		if err != nil {
			return err
		}
		if st.Epoch != 4 {
			t.Errorf("epoch %d, want 4", st.Epoch)
		}
		want := map[string]float64{"model.w": 1, "optim.momentum.w": 0.5}
		for _, nt := range named {
			v, ok := want[nt.Name]
			if !ok {
				continue
			}
			delete(want, nt.Name)
			for _, got := range nt.Tensor.Float64Values() {
				if got != v {
					t.Errorf("%s holds %v, want %v (the value when the snapshot was taken)", nt.Name, got, v)
					break
				}
			}
		}
		if len(want) != 0 {
			t.Errorf("missing from the checkpoint: %v", want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointWriteFails: an epoch's checkpoint is written on another
// thread while the next epoch trains; when that write fails (here
// checkpoint.prev.pt is a folder, so the checkpoint before cannot be kept),
// the run stops with the error, naming the file, and checkpoint.pt still
// holds a whole earlier checkpoint.
func TestCheckpointWriteFails(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	c := tinyConfig(filepath.Join(t.TempDir(), "run"))
	fault := ObserverFuncs{Before: func(epoch, batch int) {
		if epoch == 1 && batch == 0 {
			if err := os.MkdirAll(filepath.Join(c.Out, PrevCheckpoint, "x"), 0o755); err != nil {
				t.Error(err)
			}
		}
	}}
	_, err := Run(context.Background(), c, nil, fault)
	if err == nil || !strings.Contains(err.Error(), "write checkpoint "+filepath.Join(c.Out, CheckpointFile)) {
		t.Fatalf("err = %v, want the failed write naming %s", err, CheckpointFile)
	}
	st, _, err := readCheckpointState(filepath.Join(c.Out, CheckpointFile))
	if err != nil || st.Epoch < 1 || st.Epoch >= c.Epochs {
		t.Errorf("checkpoint.pt at epoch %d (%v): want a whole checkpoint before the end", st.Epoch, err)
	}
	if _, err := os.Stat(filepath.Join(c.Out, SummaryFile)); err == nil {
		t.Errorf("%s written by a run whose checkpoint failed", SummaryFile)
	}
}

// TestCheckpointFullDisk (issue 26, case 1): a checkpoint that does not fit
// on the disk stops the run with one line naming the file and ENOSPC, and
// leaves no temporary file; the process lives on (libtorch's own writer
// ended it with SIGABRT). The disk is a 1 MiB tmpfs, which needs root.
func TestCheckpointFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	c := tinyConfig(filepath.Join(dir, "run"))
	_, err := Run(context.Background(), c, nil)
	if err == nil {
		t.Fatal("a run whose checkpoint does not fit on the disk succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "write checkpoint "+filepath.Join(c.Out, CheckpointFile)) ||
		!strings.Contains(msg, "no space left on device") {
		t.Errorf("err = %q, want one line naming %s and the full disk", msg, CheckpointFile)
	}
	entries, _ := os.ReadDir(c.Out)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("%s left behind", e.Name())
		}
	}
}
