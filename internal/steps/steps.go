// Package steps helps tests stop a training run at a chosen step, as a
// SIGINT would: the trainer writes one live progress line per training step
// ("\repoch E/N  step …") to its progress writer.
package steps

import (
	"context"
	"strings"
)

// CancelAfter is a progress writer that cancels a context after N
// training steps.
type CancelAfter struct {
	N      int
	Cancel context.CancelFunc
}

func (c *CancelAfter) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), "\repoch") {
		if c.N--; c.N == 0 {
			c.Cancel()
		}
	}
	return len(p), nil
}
