// Package fusedtest is what the tests of the fused convolutions share:
// whether they run on this build.
package fusedtest

import (
	"os"
	"testing"

	"github.com/lwr-go/lwr/pkg/libtorch"
)

// Require skips t on a build without the fused convolutions (PyPI's torch,
// or Debian's without libdnnl-dev), unless LWR_REQUIRE_FUSED=1 — set by CI
// for Debian's libtorch with libdnnl-dev — makes that a failure.
func Require(t testing.TB) {
	t.Helper()
	if libtorch.FusedAvailable() {
		return
	}
	if os.Getenv("LWR_REQUIRE_FUSED") == "1" {
		t.Fatal("LWR_REQUIRE_FUSED=1 but this build has no fused convolutions (make setup's log says why)")
	}
	t.Skip("no fused convolutions in this build")
}
