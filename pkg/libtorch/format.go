package libtorch

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/internal/csrc"
)

// Memory formats of 4-d tensors (images, convolution weights).
const (
	Contiguous   = "contiguous"    // NCHW, libtorch's default
	ChannelsLast = "channels-last" // NHWC: oneDNN's fast convolutions on CPUs
)

// ToChannelsLast returns x in the channels-last memory format (the same
// values; x itself is left as it is). Tensors that are not 4-d come back
// as a new handle to the same data.
func ToChannelsLast(x *ts.Tensor) (*ts.Tensor, error) {
	c, msg := csrc.ChannelsLast(x.Ctensor())
	if msg != "" {
		return nil, kernelError(msg)
	}
	return wrap(c), nil
}

// SetChannelsLast switches the storage of every 4-d tensor of vars to
// channels-last in place (parameters keep their identity: the optimiser
// and the variable store see the same tensors).
func SetChannelsLast(vars []*ts.Tensor) error {
	for _, v := range vars {
		if msg := csrc.SetChannelsLast(v.Ctensor()); msg != "" {
			return fmt.Errorf("channels-last: %w", kernelError(msg))
		}
	}
	return nil
}

// IsChannelsLast reports whether x is 4-d and stored channels-last.
func IsChannelsLast(x *ts.Tensor) bool { return csrc.IsChannelsLast(x.Ctensor()) }
