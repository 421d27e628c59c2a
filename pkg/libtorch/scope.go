package libtorch

import "github.com/sugarme/gotch/ts"

// Scope collects the tensors made during one unit of work (a training
// step, a forward pass) and frees them together, so that libtorch memory is
// returned at once instead of whenever Go's garbage collector runs gotch's
// finalizers. The zero Scope is ready to use; a Scope is not safe for
// concurrent use.
//
//	var s libtorch.Scope
//	defer s.Free()
//	y := s.Keep(x.MustRelu(false))
type Scope struct {
	tensors []*ts.Tensor
}

// Keep adds t to the scope and returns it.
func (s *Scope) Keep(t *ts.Tensor) *ts.Tensor {
	s.tensors = append(s.tensors, t)
	return t
}

// Len is the number of tensors the scope holds.
func (s *Scope) Len() int { return len(s.tensors) }

// Free frees every tensor kept since the last Free, newest first.
func (s *Scope) Free() {
	for i := len(s.tensors) - 1; i >= 0; i-- {
		s.tensors[i].MustDrop()
		s.tensors[i] = nil
	}
	s.tensors = s.tensors[:0]
}

// Detach removes t from the scope without freeing it, so that it outlives
// the scope (a result handed to the caller). It reports whether t was kept.
func (s *Scope) Detach(t *ts.Tensor) bool {
	for i := len(s.tensors) - 1; i >= 0; i-- {
		if s.tensors[i] == t {
			s.tensors = append(s.tensors[:i], s.tensors[i+1:]...)
			return true
		}
	}
	return false
}
