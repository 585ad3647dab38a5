package rules

import (
	"encoding/json"

	"github.com/nodetune/nodetune/detect"
)

// felixCooperation makes f's fix go through Felix where nodetune may
// cooperate with Calico (the FelixConfigurations were read, which
// --calico.cooperate asks for) and Felix alone keeps the device's offload
// off: first this node's FelixConfiguration gets
// ChecksumOffloadBroken=false in its featureDetectOverride (tune works out
// the whole spec from the objects read, and journals the original), then,
// once Felix restarted with it, offload is turned on once. Where another
// agent also owns the setting, the objects could not be read, or
// calico-node's environment sets the override (which wins over every
// FelixConfiguration), nothing changes: the owner gate keeps refusing, and
// says why.
func felixCooperation(s *detect.Snapshot, f *Finding) {
	o := f.Owner
	if o == nil || o.Name != detect.OwnerFelix || len(o.Also) > 0 || !s.Felix.Read || s.Felix.Err.Failed() || s.Felix.Node == "" {
		return
	}
	if env := s.Ownership.Calico; env.EnvOverrideSet && !detect.OverrideInForce(felixSpecOf(env.EnvOverride), detect.FelixOverrideKey, "false") {
		f.Fix.Manual += "; --calico.cooperate cannot help here: calico-node's environment sets FELIX_FEATUREDETECTOVERRIDE=" + env.EnvOverride +
			", which wins over every FelixConfiguration"
		return
	}
	override := Change{Kind: ChangeFelixConfiguration, Target: "node." + s.Felix.Node, Setting: "spec",
		Value: detect.FelixOverrideKey + "=false"}
	f.Fix.Changes = append([]Change{override}, f.Fix.Changes...)
	f.Fix.Manual = "with --calico.cooperate nodetune writes " + override.Target + " (featureDetectOverride " + override.Value +
		", every other key kept), waits for Felix to restart with it, then turns offload on once and checks that it stays on"
	f.Evidence = append(f.Evidence, Evidence{"felix_configuration_api", s.Felix.APIVersion})
}

// felixSpecOf is a spec whose featureDetectOverride is override.
func felixSpecOf(override string) string {
	b, _ := json.Marshal(map[string]string{detect.FelixSpecField: override})
	return string(b)
}
