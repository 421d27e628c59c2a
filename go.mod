module github.com/lwr-go/lwr

go 1.22

require github.com/sugarme/gotch v0.9.1

require github.com/spf13/pflag v1.0.5

// third_party/gotch is gotch v0.9.1 adapted to the libtorch on this machine
// by `make setup` (tools/torchsetup); it is generated and git-ignored.
replace github.com/sugarme/gotch => ./third_party/gotch
