package train

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/lwr"
	"github.com/lwr-go/lwr/pkg/pth"
	"github.com/lwr-go/lwr/pkg/regularfile"
	"github.com/lwr-go/lwr/pkg/safetensors"
)

// Weights in and out of lwr, as safetensors in PyTorch's names: our
// variable names are already torchvision's (ResNet-50, ResNeXt-50) and
// LDAM-DRW's (ResNet-32: conv1, bn1, layer1.0.conv1, …, linear). Export
// adds the num_batches_tracked buffer PyTorch's BatchNorm2d keeps, and
// writes LDAM's normalised classifier in its [in, out] layout. The LWR
// projection MLP is not part of the network and stays out.

// ExportWeights writes the network of the checkpoint ckpt to path (a
// .safetensors file), loadable with load_state_dict(strict=True) into
// torchvision's resnet50/resnext50_32x4d or the LDAM-DRW ResNet-32.
func ExportWeights(ckpt, path string) error {
	return libtorch.OnThread(func() error {
		st, named, err := readCheckpointState(ckpt)
		if err != nil {
			return err
		}
		var model []ts.NamedTensor
		for _, nt := range named {
			if name, ok := strings.CutPrefix(nt.Name, "model."); ok {
				model = append(model, ts.NamedTensor{Name: name, Tensor: nt.Tensor})
			}
		}
		meta := map[string]string{"format": "pt", "model": st.Config.Model, "dataset": st.Config.Dataset,
			"loss": st.Config.Loss.Name, "epochs_trained": fmt.Sprint(st.Epoch), "written_by": "lwr"}
		return exportNamed(model, isLDAM(st.Config.Loss.Name), path, meta)
	})
}

// exportNamed writes the network tensors of named (variable names; those
// under lwr. are left out) to path.
//
// An LWS run's class scales s are folded into the classifier (row c of
// the weight and bias times s_c), so that the exported network's logits
// are the LWS logits.
func exportNamed(named []ts.NamedTensor, normed bool, path string, meta map[string]string) error {
	out := map[string]safetensors.Tensor{}
	var scale *safetensors.Tensor
	for _, nt := range named {
		if nt.Name == "lws.scale" {
			if normed {
				return fmt.Errorf("export %s: LWS's class scales cannot be folded into LDAM's normalised classifier; export the network it started from", path)
			}
			t, err := toSafetensor(nt.Tensor)
			if err != nil {
				return fmt.Errorf("export %s: %w", nt.Name, err)
			}
			scale = &t
			continue
		}
		if notNetwork(nt.Name) {
			continue
		}
		t, err := toSafetensor(nt.Tensor)
		if err != nil {
			return fmt.Errorf("export %s: %w", nt.Name, err)
		}
		if normed && nt.Name == "linear.weight" {
			t = transpose(t)
		}
		out[nt.Name] = t
		if prefix, ok := strings.CutSuffix(nt.Name, ".running_var"); ok {
			out[prefix+".num_batches_tracked"] = safetensors.Tensor{DType: "I64", Shape: []int64{}, I64: []int64{0}}
		}
	}
	if len(out) == 0 {
		return fmt.Errorf("export %s: no network variables", path)
	}
	if scale != nil {
		if err := foldScales(out, scale.F32); err != nil {
			return fmt.Errorf("export %s: %w", path, err)
		}
	}
	return safetensors.Write(path, out, meta)
}

// foldScales multiplies row c of the classifier's weight and bias in
// tensors (ResNet-32's linear, ResNet-50's fc) by scale[c].
func foldScales(tensors map[string]safetensors.Tensor, scale []float32) error {
	for _, head := range []string{"linear", "fc"} {
		w, ok := tensors[head+".weight"]
		if !ok {
			continue
		}
		if len(w.Shape) != 2 || w.Shape[0] != int64(len(scale)) || w.DType != "F32" {
			return fmt.Errorf("LWS: %s.weight %v %s, %d class scales", head, w.Shape, w.DType, len(scale))
		}
		d := int(w.Shape[1])
		rows := append([]float32(nil), w.F32...)
		for c, s := range scale {
			for k := 0; k < d; k++ {
				rows[c*d+k] *= s
			}
		}
		w.F32 = rows
		tensors[head+".weight"] = w
		if b, ok := tensors[head+".bias"]; ok && len(b.F32) == len(scale) {
			bias := append([]float32(nil), b.F32...)
			for c, s := range scale {
				bias[c] *= s
			}
			b.F32 = bias
			tensors[head+".bias"] = b
		}
		return nil
	}
	return errors.New("LWS: no classifier (linear or fc) to fold the class scales into")
}

// notNetwork reports variables that are lwr's additions, not the network's:
// the LWR projection and LWS's class scales.
func notNetwork(name string) bool {
	return strings.HasPrefix(name, "lwr.") || strings.HasPrefix(name, "lws.")
}

// toSafetensor copies t to the host as float32 (or int64).
func toSafetensor(t *ts.Tensor) (safetensors.Tensor, error) {
	var out safetensors.Tensor
	err := libtorch.Catch(func() {
		out.Shape = t.MustSize()
		c := t.MustDetach(false).MustTo(gotch.CPU, true).MustContiguous(true)
		defer c.MustDrop()
		switch c.DType() {
		case gotch.Int64:
			out.DType, out.I64 = "I64", c.Int64Values()
		default:
			out.DType = "F32"
			for _, v := range c.Float64Values() {
				out.F32 = append(out.F32, float32(v))
			}
		}
	})
	return out, err
}

// transpose swaps the two axes of a 2-D F32 tensor.
func transpose(t safetensors.Tensor) safetensors.Tensor {
	r, c := t.Shape[0], t.Shape[1]
	out := safetensors.Tensor{DType: "F32", Shape: []int64{c, r}, F32: make([]float32, len(t.F32))}
	for i := int64(0); i < r; i++ {
		for j := int64(0); j < c; j++ {
			out.F32[j*r+i] = t.F32[i*c+j]
		}
	}
	return out
}

// readWeights reads the tensors sel takes of a safetensors file or of a
// torch.save .pth (told apart by their first bytes, not their names).
func readWeights(path string, sel safetensors.Select) (map[string]safetensors.Tensor, error) {
	f, err := regularfile.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 4)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if pth.IsZip(head) {
		return pth.ReadSelected(path, sel)
	}
	tensors, _, err := safetensors.ReadSelected(path, sel)
	return tensors, err
}

// ImportWeights copies the tensors of path (safetensors in PyTorch's
// names, as ExportWeights writes, or a PyTorch state dict saved by
// torch.save — torchvision's .pth files — or a checkpoint holding one) into
// the network variables of vs, strictly: every variable of the network (not
// the LWR projection) must be in the file with its shape, and every tensor
// of the file (but num_batches_tracked) must be a variable; the first that
// is not is an error naming the key.
func ImportWeights(vs *nn.VarStore, path string, normed bool) error {
	return importWeights(vs, path, normed, nil)
}

// importWeights is ImportWeights leaving out the variables keep names
// (they keep their values, and the file's tensors of those names are
// ignored): cRT's classifier, drawn anew.
//
// Names and shapes are matched to the model before anything is decoded, so
// that what is decoded is at most the model's own size whatever the file
// claims: a tensor the model lacks is counted, not read.
func importWeights(vs *nn.VarStore, path string, normed bool, keep func(name string) bool) error {
	vars := vs.Variables()
	defer runtime.KeepAlive(vs) // vars holds copies of its tensors' handles (see saveCheckpoint)
	var extra []string
	tensors, err := readWeights(path, func(name string, shape []int64) (bool, error) {
		if strings.HasSuffix(name, ".num_batches_tracked") || (keep != nil && keep(name)) {
			return false, nil
		}
		v, ok := vars[name]
		if !ok {
			extra = append(extra, name)
			return false, nil
		}
		if notNetwork(name) {
			return false, nil // the LWR projection or LWS's scales: not loaded
		}
		want := v.MustSize()
		if normed && name == "linear.weight" && len(want) == 2 {
			want = []int64{want[1], want[0]} // LDAM's [in, out] layout
		}
		if !slices.Equal(shape, want) {
			return false, fmt.Errorf("%s: %q has shape %v, the model's %v", path, name, shape, want)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%s: %q is not a variable of the model (%d such keys; a different architecture or class count?)", path, extra[0], len(extra))
	}
	var names []string
	for name := range vars {
		if !notNetwork(name) && (keep == nil || !keep(name)) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("%s: no tensor %q (the model's %s needs it)", path, name, name)
		}
		if normed && name == "linear.weight" && len(t.Shape) == 2 {
			t = transpose(t)
		}
		v := vars[name]
		if t.DType != "F32" {
			return fmt.Errorf("%s: %q is %s, want F32", path, name, t.DType)
		}
		err := libtorch.Catch(func() {
			libtorch.NoGrad(func() {
				src := ts.MustOfSlice(t.F32).MustView(t.Shape, true).MustTotype(v.DType(), true).MustTo(v.MustDevice(), true)
				dst := v
				dst.Copy_(src)
				src.MustDrop()
			})
		})
		if err != nil {
			return fmt.Errorf("%s: %q: %w", path, name, err)
		}
	}
	return nil
}

// ClassifierStats reads the classifier weights W [C,d] of the checkpoint
// ckpt (ResNet-32's linear, ResNet-50's fc) and returns their statistics:
// row norms and pairwise cosines, the fraction above theta.
func ClassifierStats(ckpt string, theta float64) (lwr.Stats, error) {
	var st lwr.Stats
	err := libtorch.OnThread(func() error {
		_, named, err := readCheckpointState(ckpt)
		if err != nil {
			return err
		}
		for _, nt := range named {
			if nt.Name == "model.linear.weight" || nt.Name == "model.fc.weight" {
				if sz := nt.Tensor.MustSize(); len(sz) != 2 || sz[0] < 2 {
					return fmt.Errorf("checkpoint %s: %s has shape %v, want [classes ≥ 2, d]", ckpt, nt.Name, sz)
				}
				return libtorch.Catch(func() { st = lwr.WeightStats(nt.Tensor, theta) })
			}
		}
		return fmt.Errorf("checkpoint %s: no classifier weights (model.linear.weight or model.fc.weight)", ckpt)
	})
	return st, err
}
