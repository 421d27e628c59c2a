package train

import (
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/lwr-go/lwr/pkg/libtorch"
	"github.com/lwr-go/lwr/pkg/optim"
	"github.com/lwr-go/lwr/pkg/resnet"
)

// channelsLastNet runs a network whose convolution weights are stored
// channels-last on channels-last copies of its inputs, so that libtorch
// picks oneDNN's NHWC convolutions throughout. Callers run it inside
// libtorch.Catch, which turns a failed conversion into an error.
type channelsLastNet struct{ resnet.Net }

func (n channelsLastNet) ForwardT(x *ts.Tensor, train bool) (logits, feat *ts.Tensor) {
	y, err := libtorch.ToChannelsLast(x)
	if err != nil {
		panic(err)
	}
	defer y.MustDrop()
	return n.Net.ForwardT(y, train)
}

// inMemoryFormat switches the 4-d variables of vs (and the momentum
// buffers of opt, if any) to format and returns net to run on inputs in
// it. The values do not change, only their layout in memory. Blocked
// stores them channels-last: only a network's activations are blocked
// (resnet.Options.Blocked, set when it was built).
func inMemoryFormat(format string, vs *nn.VarStore, opt *optim.SGD, net resnet.Net) (resnet.Net, error) {
	if format != libtorch.ChannelsLast && format != libtorch.Blocked {
		return net, nil
	}
	all, _ := sortedVars(vs)
	if opt != nil {
		all = append(all, opt.Buffers()...)
	}
	if err := libtorch.SetChannelsLast(all); err != nil {
		return nil, err
	}
	return channelsLastNet{net}, nil
}
