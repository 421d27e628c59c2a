package tensorboard

import (
	"strings"
	"testing"
)

// FuzzRecords: any bytes as an event file (a run folder's, cut on resume)
// split into records or stop with one short line, and any record's step
// is read or refused, without a panic.
func FuzzRecords(f *testing.F) {
	ev := appendRecord(nil, []byte("\x1a\x0dbrain.Event:2"))
	ev = appendRecord(ev, []byte("\x10\x03\x2a\x00"))
	f.Add(ev)
	f.Add(ev[:len(ev)-2])
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := Records(b)
		if err != nil && (strings.Contains(err.Error(), "\n") || len(err.Error()) > 200) {
			t.Errorf("error is not one short line: %q", err)
		}
		for _, r := range recs {
			EventStep(r)
		}
	})
}
