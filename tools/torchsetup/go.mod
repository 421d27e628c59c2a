module github.com/lwr-go/lwr/tools/torchsetup

go 1.22
