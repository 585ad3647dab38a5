package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// FelixAbsent is how a FelixConfiguration that does not exist is spelled
// as a value: never empty, so a change from "no object" keeps its
// staleness check, and never a JSON object, so it cannot be mistaken for
// a spec.
const FelixAbsent = "absent"

// FelixSpecField is the spec field of a FelixConfiguration that nodetune
// sets in node.<name>.
const FelixSpecField = "featureDetectOverride"

// FelixObjects is what the Kubernetes API showed of the FelixConfigurations
// that apply to this node: default and node.<name>. Probes read it only
// when nodetune is allowed to cooperate with Calico (--calico.cooperate);
// Read is false otherwise, and then nothing here is known.
type FelixObjects struct {
	// Read reports whether the objects were read (or tried).
	Read bool `json:"read,omitempty"`
	// APIVersion is the group/version they were read in:
	// projectcalico.org/v3 where the Calico API server runs, else
	// crd.projectcalico.org/v1.
	APIVersion string `json:"api_version,omitempty"`
	// Warning says why the CRD group was used, when it was.
	Warning string `json:"warning,omitempty"`
	// Node is the node name node.<name> is named after.
	Node    string      `json:"node,omitempty"`
	Default FelixObject `json:"default,omitzero"`
	NodeObj FelixObject `json:"node_object,omitzero"`
	Err     Err         `json:"error,omitzero"`
}

// FelixObject is one FelixConfiguration as read.
type FelixObject struct {
	// Exists is false when the API server has no such object.
	Exists bool `json:"exists,omitempty"`
	// ResourceVersion is the version read, which a write is conditional on.
	ResourceVersion string `json:"resource_version,omitempty"`
	// Spec is the object's spec as compact JSON with sorted keys ("{}" for
	// an empty one), as FelixSpec canonicalizes it.
	Spec string `json:"spec,omitempty"`
}

// Value is the object as a tune value: its canonical spec, or FelixAbsent.
func (o FelixObject) Value() string {
	if !o.Exists {
		return FelixAbsent
	}
	return o.Spec
}

// ErrFelixSpec marks a FelixConfiguration spec that is not a JSON object.
var ErrFelixSpec = errors.New("not a FelixConfiguration spec")

// FelixSpec returns spec (a JSON object) in canonical form: compact, keys
// sorted, so two specs that mean the same compare equal as strings.
func FelixSpec(spec string) (string, error) {
	m, err := felixSpecMap(spec)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrFelixSpec, err)
	}
	return string(b), nil
}

func felixSpecMap(spec string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(spec), &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFelixSpec, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: null", ErrFelixSpec)
	}
	return m, nil
}

// FelixValuesEqual reports whether two FelixConfiguration values (specs or
// FelixAbsent) mean the same object spec: JSON compared by meaning, not by
// spelling.
func FelixValuesEqual(a, b string) bool {
	if a == FelixAbsent || b == FelixAbsent {
		return a == b
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	_, okx := x.(map[string]any)
	_, oky := y.(map[string]any)
	return okx && oky && reflect.DeepEqual(x, y)
}

// FelixSpecString returns the string field key of a spec value, and
// whether it is set.
func FelixSpecString(spec, key string) (string, bool, error) {
	if spec == FelixAbsent {
		return "", false, nil
	}
	m, err := felixSpecMap(spec)
	if err != nil {
		return "", false, err
	}
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("%w: %s is not a string: %s", ErrFelixSpec, key, raw)
	}
	return s, true, nil
}

// NodeOverrideSpec works out node.<name>'s spec with key=value set in its
// featureDetectOverride, from the objects as read: every other field of
// node.<name> kept, and the override string Felix applies on this node
// (NodeFeatureDetectOverride) as the base. A malformed string or spec is
// an error, and nothing should be written.
func (f FelixObjects) NodeOverrideSpec(key, value string) (string, error) {
	if !f.Read {
		return "", errors.New("the FelixConfigurations were not read (nodetune reads them only with --calico.cooperate)")
	}
	if f.Err.Failed() {
		return "", fmt.Errorf("the FelixConfigurations could not be read: %w", f.Err)
	}
	if f.Node == "" {
		return "", errors.New("the node's name is unknown, so its FelixConfiguration cannot be named")
	}
	global, _, err := FelixSpecString(f.Default.Value(), FelixSpecField)
	if err != nil {
		return "", fmt.Errorf("the default FelixConfiguration: %w", err)
	}
	nodeStr, nodeSet, err := FelixSpecString(f.NodeObj.Value(), FelixSpecField)
	if err != nil {
		return "", fmt.Errorf("FelixConfiguration node.%s: %w", f.Node, err)
	}
	merged, err := NodeFeatureDetectOverride(global, nodeStr, nodeSet, key, value)
	if err != nil {
		return "", err
	}
	m := map[string]json.RawMessage{}
	if f.NodeObj.Exists {
		if m, err = felixSpecMap(f.NodeObj.Spec); err != nil {
			return "", fmt.Errorf("FelixConfiguration node.%s: %w", f.Node, err)
		}
	}
	m[FelixSpecField], _ = json.Marshal(merged)
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrFelixSpec, err)
	}
	return string(b), nil
}

// OverrideInForce reports whether value (a node.<name> spec) sets key to
// want in its featureDetectOverride, which then is the string Felix
// applies on this node.
func OverrideInForce(value, key, want string) bool {
	s, set, err := FelixSpecString(value, FelixSpecField)
	if err != nil || !set || !overridePattern.MatchString(strings.TrimSpace(s)) {
		return false
	}
	for entry := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		if k, v, _ := strings.Cut(entry, "="); k == key {
			return v == want
		}
	}
	return false
}
