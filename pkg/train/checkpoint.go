package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/optim"
)

// CheckpointFile is the checkpoint's name in the output folder.
const CheckpointFile = "checkpoint.pt"

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
}

// saveCheckpoint writes the variables, the momentum buffers and st to
// path in one libtorch archive, through a temporary file and a rename, so
// that path always holds a whole checkpoint.
func saveCheckpoint(path string, vs *nn.VarStore, opt *optim.SGD, st State) error {
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
	meta, err := json.Marshal(st)
	if err != nil {
		return err
	}
	mt := ts.MustOfSlice(meta)
	defer mt.MustDrop()
	named = append(named, ts.NamedTensor{Name: "meta", Tensor: mt})
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := ts.SaveMultiNew(named, tmp); err != nil { // SaveMulti builds its name array wrong
		os.Remove(tmp)
		return fmt.Errorf("write checkpoint %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	return nil
}

// readCheckpointState reads only the state of a checkpoint.
func readCheckpointState(path string) (State, []ts.NamedTensor, error) {
	var st State
	named, err := ts.LoadMulti(path)
	if err != nil {
		return st, nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	for _, nt := range named {
		if nt.Name == "meta" {
			b := nt.Tensor.MustTotype(gotch.Uint8, false)
			raw := b.Vals().([]uint8)
			b.MustDrop()
			if err := json.Unmarshal(raw, &st); err != nil {
				return st, nil, fmt.Errorf("checkpoint %s: bad state: %w", path, err)
			}
			return st, named, nil
		}
	}
	return st, nil, fmt.Errorf("checkpoint %s: no state record", path)
}

// loadCheckpoint restores variables and momentum buffers from named
// tensors read by readCheckpointState. Every variable must be there with
// its shape.
func loadCheckpoint(path string, named []ts.NamedTensor, vs *nn.VarStore, opt *optim.SGD) error {
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
	if err != nil {
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
	byHandle := map[uintptr]*ts.Tensor{}
	for _, p := range vs.TrainableVariables() {
		byHandle[uintptr(p.Ctensor())] = p
	}
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

// describeDiff says which settings differ between a checkpoint and a run.
func describeDiff(path string, saved, now Config) error {
	diff := saved.Diff(now)
	if len(diff) == 0 {
		return nil
	}
	return fmt.Errorf("checkpoint %s was made with other settings; refusing to resume (start a new --out, or use the same flags):\n  %s",
		path, strings.Join(diff, "\n  "))
}
