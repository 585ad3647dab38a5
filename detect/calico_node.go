package detect

import (
	"fmt"
	"strings"
)

// NodeFeatureDetectOverride returns the featureDetectOverride string for
// the per-node FelixConfiguration node.<name> that sets key to value and
// leaves every other key as Felix applies it on that node today.
//
// Felix takes each setting from the most specific FelixConfiguration that
// sets it, and featureDetectOverride is one setting: a per-node string
// replaces default's whole, it is not merged with it key by key. So what
// is in force on the node is node.<name>'s string when that object sets
// one (nodeSet), and default's otherwise; that string is the base, and
// only key changes. Carrying default's keys into a node string that did
// not have them would change those keys on this node too.
//
// Either string being malformed is an error wrapping
// ErrMalformedOverride, whichever one is in force: a string Calico's API
// would reject says the objects are not what nodetune understands, and
// nothing should be written from them.
func NodeFeatureDetectOverride(global, node string, nodeSet bool, key, value string) (string, error) {
	if !overridePattern.MatchString(strings.TrimSpace(global)) {
		return "", fmt.Errorf("the default FelixConfiguration's featureDetectOverride: %w: %q", ErrMalformedOverride, global)
	}
	if nodeSet && !overridePattern.MatchString(strings.TrimSpace(node)) {
		return "", fmt.Errorf("the per-node FelixConfiguration's featureDetectOverride: %w: %q", ErrMalformedOverride, node)
	}
	base := global
	if nodeSet && strings.TrimSpace(node) != "" {
		base = node
	}
	return MergeFeatureDetectOverride(base, key, value)
}
