package detect

import (
	"errors"
	"strings"
	"testing"
)

// FuzzFelixSpec: any text is a canonical spec or a clear error, never a
// panic, and a canonical spec is its own canonical form and means what
// the text meant.
func FuzzFelixSpec(f *testing.F) {
	for _, s := range []string{`{}`, `{"featureDetectOverride":"A=true"}`, `null`, `[1]`, `{"a":`, `{"a":{"b":[1,2]}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := FelixSpec(s)
		if err != nil {
			if !errors.Is(err, ErrFelixSpec) {
				t.Fatalf("error %v does not wrap ErrFelixSpec", err)
			}
			return
		}
		again, err := FelixSpec(c)
		if err != nil || again != c || !FelixValuesEqual(c, s) {
			t.Fatalf("canonical %q -> %q, %v", c, again, err)
		}
		if _, _, err := FelixSpecString(c, FelixSpecField); err != nil && !strings.Contains(err.Error(), "not a string") {
			t.Fatalf("FelixSpecString: %v", err)
		}
	})
}

// FuzzNodeOverrideSpec: whatever the objects hold, the spec to write is
// worked out or refused with an error, and one worked out carries
// ChecksumOffloadBroken=false in force and every other field of the node
// object.
func FuzzNodeOverrideSpec(f *testing.F) {
	f.Add(`{"featureDetectOverride":"A=true,ChecksumOffloadBroken=true"}`, `{"x":1}`, true)
	f.Add(`{}`, `{"featureDetectOverride":"B=false,"}`, true)
	f.Add(`{"featureDetectOverride":"A = 1"}`, ``, false)
	f.Fuzz(func(t *testing.T, global, own string, exists bool) {
		objs := FelixObjects{Read: true, Node: "n", Default: FelixObject{Exists: true, Spec: global}, NodeObj: FelixObject{Exists: exists, Spec: own}}
		spec, err := objs.NodeOverrideSpec(FelixOverrideKey, "false")
		if err != nil {
			return
		}
		if !OverrideInForce(spec, FelixOverrideKey, "false") {
			t.Fatalf("spec %s does not carry the override", spec)
		}
		if exists {
			m, _ := felixSpecMap(own)
			n, _ := felixSpecMap(spec)
			for k := range m {
				if _, ok := n[k]; !ok {
					t.Fatalf("field %s of node.n lost: %s -> %s", k, own, spec)
				}
			}
		}
	})
}
