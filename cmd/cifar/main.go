// Command cifar trains ResNet-32 on a long-tailed CIFAR-10/100, Fashion-MNIST
// or synthetic data set with a balanced loss and Logit Weight Repulsion.
//
//	go run ./cmd/cifar                         # BS + LWR on Fashion-MNIST-LT (offline)
//	go run ./cmd/cifar --preset demo           # CE vs BS vs BS + LWR, short schedule, table
//	go run ./cmd/cifar --preset table1-bs-lwr  # the paper's CIFAR-100-LT IF100 row
package main

import (
	"github.com/lwr-go/lwr/pkg/cli"
	"github.com/lwr-go/lwr/pkg/experiment"
	"github.com/lwr-go/lwr/pkg/train"
)

const usage = `cifar trains ResNet-32 on a long-tailed image data set with a balanced loss
plus Logit Weight Repulsion (LWR), and evaluates top-1 and many/medium/few-shot
accuracy (classes with >100, 20-100 and <20 training images).

Usage:
  cifar [--preset NAME] [flags]

The defaults are the paper's CIFAR recipe (ResNet-32, batch 128, SGD with
momentum 0.9, lr 0.1 with 5 warm-up epochs and x0.1 at epochs 140 and 170 of 200,
weight decay 5e-4, Balanced Softmax + LWR with theta 0.4, tau 0.1, projection and
lambda(t) = (1-t/T)^2) on Fashion-MNIST-LT IF 100, which needs no download.
A preset sets a whole experiment; flags given beside it override its settings.

Outputs in --out: config.json (with where the run came from), log.jsonl (one
line per epoch), train.log (what the run printed), TensorBoard events,
checkpoint.pt (every epoch and on SIGINT/SIGTERM; --resume continues),
summary.json and figures.

Flags:
`

var command = cli.Command{
	Name: "cifar", Usage: usage, Defaults: train.DefaultConfig, Bind: cli.BindFlags, Presets: experiment.Presets(),
}

func main() { command.Main() }

func run(args []string) error { return command.Run(args) }
