package libtorch

import (
	"fmt"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
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
	c := lib.LwrChannelsLast(lib.Ctensor(x.Ctensor()))
	if err := ts.TorchErr(); err != nil {
		return nil, err
	}
	return ts.New(c), nil
}

// SetChannelsLast switches the storage of every 4-d tensor of vars to
// channels-last in place (parameters keep their identity: the optimiser
// and the variable store see the same tensors).
func SetChannelsLast(vars []*ts.Tensor) error {
	for _, v := range vars {
		lib.LwrSetChannelsLast(lib.Ctensor(v.Ctensor()))
		if err := ts.TorchErr(); err != nil {
			return fmt.Errorf("channels-last: %w", err)
		}
	}
	return nil
}

// IsChannelsLast reports whether x is 4-d and stored channels-last.
func IsChannelsLast(x *ts.Tensor) bool { return lib.LwrIsChannelsLast(lib.Ctensor(x.Ctensor())) }
