# lwr: make setup adapts gotch to the libtorch found here; make test runs
# every check; make demo runs the offline main job.
GO ?= go
# actionlint checks the GitHub workflow; the module proxy serves it.
ACTIONLINT ?= github.com/rhysd/actionlint/cmd/actionlint@v1.7.12

.PHONY: setup test demo bench bench-decode clean

# Built, then run (not go run), so that a failure is the tool's one line.
setup:
	@$(GO) build -C tools/torchsetup -o $(CURDIR)/bin/torchsetup .
	@bin/torchsetup --out $(CURDIR)/third_party/gotch

test: setup
	$(GO) vet ./...
	cd tools/torchsetup && $(GO) vet ./... && $(GO) test ./...
	$(GO) run $(ACTIONLINT) .github/workflows/ci.yml
	$(GO) test ./...

demo: setup
	$(GO) run ./cmd/cifar --preset demo

bench: setup
	bench/run.sh

# JPEG decoding + augmentation per core, beside torchvision + PIL.
bench-decode: setup
	bench/decode.sh

clean:
	rm -rf third_party bin
