// Command imagenet trains ResNet-50 on ImageNet-LT with a balanced loss and
// Logit Weight Repulsion.
//
//	scripts/download_imagenet_lt.sh data/imagenet      # the split files
//	go run ./cmd/imagenet --data-dir data/imagenet     # BS + LWR, the paper's recipe
//	go run ./cmd/imagenet --preset table3-bs           # one row of the paper's table
package main

import (
	"github.com/lwr-go/lwr/pkg/cli"
	"github.com/lwr-go/lwr/pkg/experiment"
	"github.com/lwr-go/lwr/pkg/train"
)

const usage = `imagenet trains a ResNet-50 on ImageNet-LT (1,000 classes, 115,846 training
images, 1,280 to 5 per class) with a balanced loss plus Logit Weight Repulsion
(LWR), and evaluates top-1 and many/medium/few-shot accuracy (classes with >100,
20-100 and <20 training images) on the 50,000-image test list.

Usage:
  imagenet [--preset NAME] [flags]

ImageNet cannot be downloaded automatically. Put ILSVRC2012 in --data-dir
(default data/imagenet) as train/nXXXXXXXX/*.JPEG and val/nXXXXXXXX/*.JPEG (the
validation images sorted into class folders), and the split files
ImageNet_LT_{train,val,test}.txt beside them or in --list-dir
(scripts/download_imagenet_lt.sh fetches and checks them). Every listed image
is checked before training; --skip-missing trains without the missing ones.

The defaults are the paper's recipe: ResNet-50, batch 256, SGD with momentum
0.9, lr 0.1 with 5 warm-up epochs and x0.1 at epochs 60 and 80 of 100, weight
decay 2e-4, RandomResizedCrop(224) + flip + ColorJitter(0.4, 0.4, 0.4),
Balanced Softmax + LWR (theta 0.4, tau 0.1, projection, lambda(t) = (1-t/T)^2).
JPEGs are decoded by --workers goroutines with libjpeg-turbo.

Outputs in --out: config.json (with where the run came from), log.jsonl (one
line per epoch), train.log (what the run printed), TensorBoard events,
checkpoint.pt (every epoch and on SIGINT/SIGTERM; --resume continues),
summary.json and figures.

Flags:
`

var command = cli.Command{
	Name: "imagenet", Usage: usage, Defaults: train.ImageNetConfig, Bind: cli.BindImageNetFlags, Presets: experiment.ImageNetPresets(),
}

func main() { command.Main() }

func run(args []string) error { return command.Run(args) }
