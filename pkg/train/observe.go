package train

import (
	"context"
	"time"

	"github.com/sugarme/gotch/nn"
)

// Observer follows a run's training steps: Run calls AfterStep on the
// training thread after each step that completed, on every rank, in
// order. An Observer that is also a BeforeStepper is called before each
// step's forward pass. The live progress line is one; StopAfter, and the
// tests' fault injection, are others. An observer must not keep s.Vars
// past the call, nor change the variables.
type Observer interface {
	AfterStep(s Step)
}

// BeforeStepper is an Observer called before each training step too, with
// its epoch and step (from 0).
type BeforeStepper interface {
	BeforeStep(epoch, batch int)
}

// Step is where a run stands after one training step.
type Step struct {
	Epoch, Epochs  int           // the epoch (from 0) and the run's number of epochs
	Batch, Batches int           // the step within the epoch (from 0) and the epoch's number of steps
	Loss           float64       // the epoch's mean balanced loss so far
	ImagesSec      float64       // images a second over the epoch so far, every rank's
	Left           time.Duration // estimated time to the run's last step, whole seconds
	Vars           *nn.VarStore  // the network's variables
}

// ObserverFuncs makes an Observer (and BeforeStepper) of two functions;
// either may be nil.
type ObserverFuncs struct {
	Before func(epoch, batch int)
	After  func(s Step)
}

// AfterStep calls o.After.
func (o ObserverFuncs) AfterStep(s Step) {
	if o.After != nil {
		o.After(s)
	}
}

// BeforeStep calls o.Before.
func (o ObserverFuncs) BeforeStep(epoch, batch int) {
	if o.Before != nil {
		o.Before(epoch, batch)
	}
}

// StopAfter is an Observer that calls cancel after n training steps of
// the run (counted from this Run's start, over epochs): the run then stops
// at the next step with a checkpoint, as on SIGINT, and Run returns
// ErrInterrupted.
func StopAfter(n int, cancel context.CancelFunc) Observer {
	return ObserverFuncs{After: func(Step) {
		if n--; n == 0 {
			cancel()
		}
	}}
}

// observers calls each of a run's observers in turn.
type observers []Observer

func (os observers) beforeStep(epoch, batch int) {
	for _, o := range os {
		if b, ok := o.(BeforeStepper); ok {
			b.BeforeStep(epoch, batch)
		}
	}
}

func (os observers) afterStep(s Step) {
	for _, o := range os {
		o.AfterStep(s)
	}
}
