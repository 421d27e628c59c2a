module github.com/lwr-go/lwr

go 1.23

require github.com/sugarme/gotch v0.9.1

require (
	github.com/spf13/pflag v1.0.5
	gonum.org/v1/plot v0.14.0
)

require (
	git.sr.ht/~sbinet/gg v0.5.0 // indirect
	github.com/ajstarks/svgo v0.0.0-20211024235047-1546f124cd8b // indirect
	github.com/campoy/embedmd v1.0.0 // indirect
	github.com/go-fonts/liberation v0.3.1 // indirect
	github.com/go-latex/latex v0.0.0-20230307184459-12ec69307ad9 // indirect
	github.com/go-pdf/fpdf v0.8.0 // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	golang.org/x/image v0.11.0 // indirect
	golang.org/x/text v0.12.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

// third_party/gotch is gotch v0.9.1 adapted to the libtorch on this machine
// by `make setup` (tools/torchsetup); it is generated and git-ignored.
replace github.com/sugarme/gotch => ./third_party/gotch
