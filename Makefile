# lwr: make setup adapts gotch to the libtorch found here; make test runs
# every check; make demo runs the offline main job.
GO ?= go
# actionlint checks the GitHub workflow; the module proxy serves it.
ACTIONLINT ?= github.com/rhysd/actionlint/cmd/actionlint@v1.7.12

# oneDNN picks its float32 kernels by CPU (SSE4.1, AVX2, AVX-512): the
# numeric tests run under each, so that they hold on every x86-64 machine,
# not only on the one that made the goldens. A cap above what the CPU has
# runs its best kernels.
NUMERIC_PKGS = ./pkg/losses ./pkg/lwr ./pkg/resnet ./pkg/optim ./pkg/train ./pkg/libtorch
NUMERIC_TESTS = Golden|MatMulT|FusedConv|ConvBlocked|ToBlocked|OptionABlocked|BottleneckBlocked|BatchNormReLU|FoldedMatches|FiniteDifferences|Parity|SGDMatchesTorch|HeInit|NormedClassifier|ForwardShapes|TinyConvNet
ISAS = SSE41 AVX2 AVX512_CORE

# lwr's C and C++: the kernels, the JPEG decoder and the augmentation loops.
C_SOURCES = $(wildcard internal/csrc/*.h internal/csrc/*.cpp pkg/jpeg/*.[ch] pkg/transform/*.[ch])

# The packages that build without cgo or libtorch (docs/architecture.md):
# tested first, in seconds, before setup.
PURE_PKGS = ./pkg/atomicfile ./pkg/regularfile ./pkg/tensorboard ./pkg/mt19937 ./pkg/config ./pkg/data ./pkg/pth ./pkg/safetensors ./pkg/metrics ./pkg/report ./pkg/experiment ./internal/doclinks

.PHONY: setup test test-pure test-isa format demo bench bench-decode clean

# Built, then run (not go run), so that a failure is the tool's one line.
setup:
	@$(GO) build -C tools/torchsetup -o $(CURDIR)/bin/torchsetup .
	@bin/torchsetup --out $(CURDIR)/third_party/gotch --kernels $(CURDIR)/internal/csrc

test: test-pure setup
	@f=$$($$($(GO) env GOROOT)/bin/gofmt -l cmd pkg internal bench tools scripts 2>/dev/null); [ -z "$$f" ] || { echo "gofmt -w these: $$f"; exit 1; }
	@command -v clang-format >/dev/null || { echo "make test: clang-format is missing (apt-get install clang-format)"; exit 1; }
	clang-format --dry-run --Werror $(C_SOURCES)
	$(GO) vet ./...
	cd tools/torchsetup && $(GO) vet ./... && $(GO) test ./...
	$(GO) run $(ACTIONLINT) .github/workflows/ci.yml
	$(GO) test ./...
	$(MAKE) --no-print-directory test-isa

# The pure tier: no cgo, no libtorch, no setup.
test-pure:
	CGO_ENABLED=0 $(GO) test $(PURE_PKGS)

format:
	clang-format -i $(C_SOURCES)

test-isa: setup
	@for isa in $(ISAS); do \
	  echo "DNNL_MAX_CPU_ISA=$$isa: numeric tests"; \
	  DNNL_MAX_CPU_ISA=$$isa $(GO) test -count=1 -run '$(NUMERIC_TESTS)' $(NUMERIC_PKGS) || exit 1; \
	done

# The demo's data first: Debian's dataset-fashion-mnist (installed as root,
# else one line saying how). --force: a second demo moves the first one's
# runs aside (runs/demo/*.old-TIME) instead of refusing their folders.
demo: setup
	@scripts/fashion_mnist.sh
	$(GO) run ./cmd/cifar --preset demo --force

# Forward + backward and memory (run.sh), whole training steps in both
# memory formats, LWR's R and evaluation (speed.sh), then whole
# Fashion-MNIST-LT epochs with their evaluation (compare.sh: 10 epochs,
# BS + LWR and CE, seeds 0-2), each beside PyTorch.
bench: setup
	bench/run.sh
	bench/speed.sh
	RUNS="bs+lwr ce" bench/compare.sh 10 0 1 2

# JPEG decoding + augmentation per core, beside torchvision + PIL.
bench-decode: setup
	bench/decode.sh

clean:
	rm -rf third_party bin
