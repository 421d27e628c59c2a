package train

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/atomicfile"
	"github.com/lwr-go/lwr/pkg/config"
	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/optim"
)

// CheckpointFile is the checkpoint's name in the output folder.
const CheckpointFile = config.CheckpointFile

// State is the position of a run that a checkpoint records beside the
// tensors: where to continue and what the interrupted epoch had summed.
type State struct {
	ConfigHash string  `json:"config_hash"`
	Config     Config  `json:"config"`
	Epoch      int     `json:"epoch"` // epoch to run next (or to continue)
	Step       int     `json:"step"`  // batches of Epoch already done
	LossSum    float64 `json:"loss_sum"`
	RegSum     float64 `json:"reg_sum"`
	Seen       int     `json:"seen"`
	Seconds    float64 `json:"seconds"` // the run's time up to this checkpoint, over all its processes
}

// saveCheckpoint writes the variables, the momentum buffers and st to
// path in one libtorch archive. It refuses weights or buffers that are not
// finite (a diverged run is never saved as good). The archive goes to a
// temporary file of a unique name, which is synced; the checkpoint it
// replaces is kept as checkpoint.prev.pt; then a rename puts it in place
// and the folder is synced. So path always holds a whole checkpoint, and
// once saveCheckpoint returns it survives a crash.
func saveCheckpoint(path string, vs *nn.VarStore, opt *optim.SGD, st State) error {
	s, err := takeSnapshot(path, vs, opt, st)
	if err != nil {
		return err
	}
	defer s.free()
	return s.write(path)
}

// snapshot is a checkpoint's contents copied to the CPU, so that training
// can change the run's tensors while it is written.
type snapshot struct {
	named []ts.NamedTensor // model.NAME, optim.momentum.NAME, then meta (st as JSON bytes)
}

// takeSnapshot copies the variables of vs, the momentum buffers of opt
// and st, after checking that they are finite (ErrDiverged naming path's
// last good state otherwise). The copies keep each tensor's layout.
func takeSnapshot(path string, vs *nn.VarStore, opt *optim.SGD, st State) (*snapshot, error) {
	// vs.Variables() copies the tensors' handles: vs must stay reachable
	// until they are copied, or the garbage collector may run the
	// finalizers of its tensors, which free the handles the copies share
	// (a caller that does not use vs after the call would let it go).
	defer runtime.KeepAlive(vs)
	var named []ts.NamedTensor
	vars := vs.Variables()
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := vars[name]
		named = append(named, ts.NamedTensor{Name: "model." + name, Tensor: &t})
	}
	paramNames, _ := trainableParams(vs)
	for i, b := range opt.Buffers() {
		named = append(named, ts.NamedTensor{Name: "optim.momentum." + paramNames[i], Tensor: b})
	}
	if bad := nonFinite(named); bad != "" {
		return nil, fmt.Errorf("%w: %s is not finite; %s", ErrDiverged, bad, lastGood(path))
	}
	meta, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	s := &snapshot{}
	defer func() { // a libtorch error while copying (out of memory): free what was copied
		if r := recover(); r != nil {
			s.free()
			panic(r)
		}
	}()
	libtorch.NoGrad(func() {
		for _, nt := range named {
			var c *ts.Tensor
			if !nt.Tensor.MustDevice().IsCuda() { // gotch reads a CPU tensor's device as {CPU 1}, not gotch.CPU
				c = nt.Tensor.MustEmptyLike(false)
				c.Copy_(nt.Tensor)
			} else {
				c = nt.Tensor.MustTo(gotch.CPU, false)
			}
			s.named = append(s.named, ts.NamedTensor{Name: nt.Name, Tensor: c})
		}
	})
	s.named = append(s.named, ts.NamedTensor{Name: "meta", Tensor: ts.MustOfSlice(meta)})
	return s, nil
}

// free releases the copies.
func (s *snapshot) free() {
	for _, nt := range s.named {
		nt.Tensor.MustDrop()
	}
	s.named = nil
}

// write writes s to path as saveCheckpoint says. It makes libtorch calls:
// run it on a thread of its own (libtorch.OnThread), or the training one.
func (s *snapshot) write(path string) error {
	dir := filepath.Dir(path)
	b, err := libtorch.SaveArchive(s.named)
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, libtorch.Short(err))
	}
	// Go writes the file, so that a full disk or an I/O error is an error
	// here (libtorch's own writer aborts the process on a short write).
	tmp, err := atomicfile.WriteTemp(path, b)
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	fail := func(err error) error {
		os.Remove(tmp)
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(b))
	current, err := readSums(path)
	if err != nil {
		current = nil // a bad sidecar is replaced
	}
	linked := exists(path)
	if linked {
		// Keep the current checkpoint as the previous one: a hard link
		// made under a temporary name, renamed into place. Its sidecar
		// first accepts both the previous file and the current one.
		prev := filepath.Join(dir, PrevCheckpoint)
		if current != nil {
			older, _ := readSums(prev)
			if err := writeSums(prev, union(current, older)); err != nil {
				return fail(err)
			}
		} else if err := os.Remove(sidecar(prev)); err != nil && !os.IsNotExist(err) {
			return fail(err)
		}
		link := filepath.Join(dir, fmt.Sprintf(".%s.tmp%d", PrevCheckpoint, os.Getpid()))
		os.Remove(link)
		if err := os.Link(path, link); err != nil {
			return fail(err)
		}
		if err := os.Rename(link, prev); err != nil {
			os.Remove(link)
			return fail(err)
		}
	}
	// The sidecar accepts the new file before it is renamed into place,
	// and only it after.
	if err := writeSums(path, union([]string{sum}, current)); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := writeSums(path, []string{sum}); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	if linked && current != nil { // the previous checkpoint is the one current described
		if err := writeSums(filepath.Join(dir, PrevCheckpoint), current); err != nil {
			return fmt.Errorf("write checkpoint %s: %w", path, err)
		}
	}
	return syncDir(dir)
}

// ErrDiverged reports weights, buffers, losses or outputs that are NaN or
// infinite.
var ErrDiverged = errors.New("diverged")

// nonFinite names the first tensor of named holding a NaN or an infinity,
// or returns "".
func nonFinite(named []ts.NamedTensor) string {
	bad := ""
	libtorch.NoGrad(func() {
		for _, nt := range named {
			ok := nt.Tensor.MustIsfinite(false).MustAll(true)
			v := ok.Int64Values(true)[0] // host sync
			if v == 0 {
				bad = nt.Name
				return
			}
		}
	})
	return bad
}

// maxMetaBytes bounds the state record a checkpoint may claim (ours are
// a few kB).
const maxMetaBytes = 1 << 20

// readCheckpointState reads a checkpoint: its state record and all its
// tensors. A file libtorch cannot read, or without a sound state record,
// is an error naming the file; so is anything but a regular file (libtorch
// would block on a FIFO, holding the run's lock, deaf to SIGTERM).
func readCheckpointState(path string) (st State, named []ts.NamedTensor, err error) {
	if fi, err := os.Stat(path); err != nil {
		return st, nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return st, nil, fmt.Errorf("read checkpoint %s: not a regular file (%v)", path, fi.Mode().Type())
	}
	if err := verifySum(path); err != nil {
		return st, nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	var loadErr error
	err = libtorch.Catch(func() {
		named, loadErr = ts.LoadMulti(path)
	})
	if err == nil {
		err = libtorch.Short(loadErr)
	}
	if err != nil {
		return st, nil, fmt.Errorf("read checkpoint %s: not a readable checkpoint (truncated or corrupt?): %w", path, err)
	}
	for _, nt := range named {
		if nt.Name != "meta" {
			continue
		}
		if nt.Tensor.DType() != gotch.Uint8 || nt.Tensor.Numel() > maxMetaBytes {
			return st, nil, fmt.Errorf("checkpoint %s: bad state record (%v, %d elements)", path, nt.Tensor.DType(), nt.Tensor.Numel())
		}
		st, err := parseState(path, nt.Tensor.Vals().([]uint8))
		if err != nil {
			return st, nil, err
		}
		return st, named, nil
	}
	return st, nil, fmt.Errorf("checkpoint %s: no state record", path)
}

// parseState decodes a checkpoint's state record (JSON bytes, at most
// maxMetaBytes) and checks its position, naming the checkpoint path.
func parseState(path string, raw []byte) (State, error) {
	var st State
	if len(raw) > maxMetaBytes {
		return st, fmt.Errorf("checkpoint %s: a state record of %d bytes, more than %d", path, len(raw), maxMetaBytes)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("checkpoint %s: bad state: %w", path, err)
	}
	if st.Epoch < 0 || st.Step < 0 || st.Seen < 0 {
		return st, fmt.Errorf("checkpoint %s: bad state: epoch %d, step %d", path, st.Epoch, st.Step)
	}
	return st, nil
}

// readLatestCheckpoint reads checkpoint.pt of dir or, when that one is
// unreadable, checkpoint.prev.pt, saying so through logf.
func readLatestCheckpoint(dir string, logf func(string, ...any)) (string, State, []ts.NamedTensor, error) {
	path := filepath.Join(dir, CheckpointFile)
	st, named, err := readCheckpointState(path)
	if err == nil {
		return path, st, named, nil
	}
	prev := filepath.Join(dir, PrevCheckpoint)
	if !exists(prev) {
		return path, st, nil, err
	}
	pst, pnamed, perr := readCheckpointState(prev)
	if perr != nil {
		return path, st, nil, fmt.Errorf("%w; the previous one is unreadable too: %v", err, perr)
	}
	logf("%v; resuming from %s (epoch %d, step %d)", err, prev, pst.Epoch, pst.Step)
	return prev, pst, pnamed, nil
}

// loadCheckpoint restores variables and momentum buffers (unless opt is
// nil) from named tensors read by readCheckpointState. Every variable must
// be there with its shape.
func loadCheckpoint(path string, named []ts.NamedTensor, vs *nn.VarStore, opt *optim.SGD) error {
	defer runtime.KeepAlive(vs) // as in saveCheckpoint
	byName := map[string]*ts.Tensor{}
	for _, nt := range named {
		byName[nt.Name] = nt.Tensor
	}
	var err error
	libtorch.NoGrad(func() {
		for name, v := range vs.Variables() {
			src, ok := byName["model."+name]
			if !ok {
				err = fmt.Errorf("checkpoint %s: no variable %s", path, name)
				return
			}
			if !slices.Equal(src.MustSize(), v.MustSize()) {
				err = fmt.Errorf("checkpoint %s: %s has shape %v, the model %v", path, name, src.MustSize(), v.MustSize())
				return
			}
			dst := v
			dst.Copy_(src)
		}
	})
	if err != nil || opt == nil { // no optimiser: the variables alone
		return err
	}
	paramNames, _ := trainableParams(vs)
	var bufs []*ts.Tensor
	for _, name := range paramNames {
		b, ok := byName["optim.momentum."+name]
		if !ok {
			break
		}
		bufs = append(bufs, b.MustTo(vs.Device(), false))
	}
	switch len(bufs) {
	case 0: // saved before the first step, or without momentum
		return nil
	case len(paramNames):
		return opt.SetBuffers(bufs)
	}
	return fmt.Errorf("checkpoint %s: momentum buffers for %d of %d parameters", path, len(bufs), len(paramNames))
}

// trainableParams lists the trainable variables of vs sorted by name, as
// the pointers the model holds (gotch's TrainableVariables has no names and
// a random order, which would mismatch momentum buffers across runs).
func trainableParams(vs *nn.VarStore) ([]string, []*ts.Tensor) {
	byHandle := trainableByHandle(vs)
	var names []string
	for name, v := range vs.Variables() {
		if _, ok := byHandle[uintptr(v.Ctensor())]; ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	vars := vs.Variables()
	params := make([]*ts.Tensor, len(names))
	for i, name := range names {
		v := vars[name]
		params[i] = byHandle[uintptr(v.Ctensor())]
	}
	return names, params
}

// trainableByHandle maps the C handle of each trainable variable of vs to
// the pointer the model holds (Variables returns copies).
func trainableByHandle(vs *nn.VarStore) map[uintptr]*ts.Tensor {
	byHandle := map[uintptr]*ts.Tensor{}
	for _, p := range vs.TrainableVariables() {
		byHandle[uintptr(p.Ctensor())] = p
	}
	return byHandle
}

// describeDiff says which settings differ between a checkpoint and a run.
func describeDiff(path string, saved, now Config) error {
	diff := saved.Diff(now.Run)
	if len(diff) == 0 {
		return nil
	}
	return fmt.Errorf("%s was made with other settings; refusing to resume (start a new --out, or use the same flags):\n  %s",
		path, strings.Join(diff, "\n  "))
}
