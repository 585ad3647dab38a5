package kube

// ModeLabel is the Node label that overrides the DaemonSet's mode on one
// node: "observe" or "remediate".
const ModeLabel = "nodetune.io/mode"

// The modes the label may name.
const (
	ModeObserve   = "observe"
	ModeRemediate = "remediate"
)

// Mode returns the mode the Node's nodetune.io/mode label asks for, and
// false when the label is absent, not yet read, or names no mode (that
// case is logged once per value). The label is read from the watch cache,
// so a change takes effect within moments and costs no request.
func (r *Reporter) Mode() (string, bool) {
	n, ok := r.cached()
	if !ok {
		return "", false
	}
	v, ok := n.Labels[ModeLabel]
	if !ok {
		return "", false
	}
	if v != ModeObserve && v != ModeRemediate {
		// Mode is asked before each apply and each cycle; one warning per bad value is enough.
		r.modeMu.Lock()
		if r.badMode != v {
			r.badMode = v
			r.log.Warn("ignoring a node label that names no mode", "label", ModeLabel, "value", v)
		}
		r.modeMu.Unlock()
		return "", false
	}
	return v, true
}
