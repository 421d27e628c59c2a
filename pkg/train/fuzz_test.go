package train

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseState: any bytes as a checkpoint's state record are decoded or
// refused with one line naming the checkpoint, without a panic. Seeds: the
// record of a fresh run and damaged ones.
func FuzzParseState(f *testing.F) {
	c := DefaultConfig()
	good, err := json.Marshal(State{ConfigHash: c.Hash(), Config: c, Epoch: 3, Step: 2, Seen: 256})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"epoch":-1}`))
	f.Add([]byte(`{"config":{"lr":1e400}}`))
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := parseState("ckpt", raw)
		if err != nil {
			if !strings.Contains(err.Error(), "checkpoint ckpt") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error does not name the checkpoint in one line: %.300q", err.Error())
			}
			return
		}
		if st.Epoch < 0 || st.Step < 0 || st.Seen < 0 {
			t.Errorf("accepted a negative position: %+v", st)
		}
	})
}
