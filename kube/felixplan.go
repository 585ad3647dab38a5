package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// FelixDefault is the name of the cluster-wide FelixConfiguration.
const FelixDefault = "default"

// featureDetectOverride is the spec field nodetune sets.
const featureDetectOverride = "featureDetectOverride"

// FelixNodeName is the name of node's own FelixConfiguration, which Felix
// on that node applies over default.
func FelixNodeName(node string) string { return "node." + node }

// FelixOverridePlan is the change to node.<name> that sets one
// featureDetectOverride key, worked out from the objects as they are.
type FelixOverridePlan struct {
	// Name is the object, node.<nodename>.
	Name string
	// APIVersion is the group/version it is read and written in.
	APIVersion string
	// Before is the object as read, nil when it does not exist; its
	// resourceVersion is what the write is conditional on.
	Before *FelixConfiguration
	// After is the object to write.
	After *FelixConfiguration
	// Override is the featureDetectOverride string After carries.
	Override string
	// Changed is false when Before already carries Override.
	Changed bool
	// Install is the Calico install type (detect.CalicoOperator,
	// detect.CalicoManifest, or "" when unknown).
	Install string
}

// PlanNodeOverride reads default and node.<node> and plans setting key to
// value in node.<node>'s featureDetectOverride, every other key kept as
// Felix applies it on the node (detect.NodeFeatureDetectOverride). A
// malformed string is an error wrapping detect.ErrMalformedOverride, and
// nothing is to be written. install is the Calico install type detected
// on the node, for the notes.
func (f *FelixConfigs) PlanNodeOverride(ctx context.Context, node, key, value, install string) (*FelixOverridePlan, error) {
	if node == "" {
		return nil, fmt.Errorf("planning a per-node FelixConfiguration: no node name")
	}
	name := FelixNodeName(node)
	global, _, err := f.specString(ctx, FelixDefault)
	if err != nil {
		return nil, err
	}
	before, err := f.Get(ctx, name)
	if IsNotFound(err) {
		before, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	var nodeStr string
	var nodeSet bool
	if before != nil {
		if nodeStr, nodeSet, err = before.SpecString(featureDetectOverride); err != nil {
			return nil, err
		}
	}
	merged, err := detect.NodeFeatureDetectOverride(global, nodeStr, nodeSet, key, value)
	if err != nil {
		return nil, fmt.Errorf("planning FelixConfiguration %s: %w", name, err)
	}
	after := NewFelixConfiguration(name)
	if before != nil {
		after = before.Clone()
	}
	after.SetSpecString(featureDetectOverride, merged)
	return &FelixOverridePlan{
		Name: name, APIVersion: f.APIVersion(), Before: before, After: after, Override: merged,
		Changed: before == nil || !nodeSet || nodeStr != merged, Install: install,
	}, nil
}

// specString reads one string spec field of the object name; a missing
// object reads as unset.
func (f *FelixConfigs) specString(ctx context.Context, name string) (string, bool, error) {
	fc, err := f.Get(ctx, name)
	if IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return fc.SpecString(featureDetectOverride)
}

// Apply writes the plan: creates node.<name> when it did not exist, or
// updates it on condition that it is still as read. Another writer's
// change in between is an error matching ErrConflict (or ErrAlreadyExists
// for a create), and nothing is written. It returns the stored object.
func (f *FelixConfigs) Apply(ctx context.Context, p *FelixOverridePlan) (*FelixConfiguration, error) {
	if p.Before == nil {
		return f.Create(ctx, p.After)
	}
	return f.Update(ctx, p.After)
}

// Restore puts node.<name> back as before (the plan's Before) from the
// object nodetune wrote (written): deletes it when it did not exist, else
// writes Before's spec back. Both are conditional on written's
// resourceVersion, so a change another writer made since is an error
// matching ErrConflict, reported and not clobbered.
func (f *FelixConfigs) Restore(ctx context.Context, before, written *FelixConfiguration) error {
	if before == nil {
		return f.Delete(ctx, written.Metadata.Name, written.Metadata.ResourceVersion)
	}
	back := written.Clone()
	back.Spec = before.Clone().Spec
	_, err := f.Update(ctx, back)
	return err
}

// Diff is the plan's change to the object's spec, one line per field in
// the order of their names: "  " for a field kept, "- " and "+ " for one
// removed or added, values in JSON.
func (p *FelixOverridePlan) Diff() string {
	var b strings.Builder
	if p.Before == nil {
		fmt.Fprintf(&b, "FelixConfiguration %s (%s): created\n", p.Name, p.APIVersion)
	} else {
		fmt.Fprintf(&b, "FelixConfiguration %s (%s, resourceVersion %s)\n", p.Name, p.APIVersion, p.Before.Metadata.ResourceVersion)
	}
	b.WriteString(" spec:\n")
	var before map[string]json.RawMessage
	if p.Before != nil {
		before = p.Before.Spec
	}
	after := p.After.Spec
	var keys []string
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		old, hadOld := before[k]
		cur, hasNew := after[k]
		switch {
		case hadOld && hasNew && bytes.Equal(compact(old), compact(cur)):
			fmt.Fprintf(&b, "   %s: %s\n", k, compact(cur))
		default:
			if hadOld {
				fmt.Fprintf(&b, "-  %s: %s\n", k, compact(old))
			}
			if hasNew {
				fmt.Fprintf(&b, "+  %s: %s\n", k, compact(cur))
			}
		}
	}
	return b.String()
}

func compact(v json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}

// Command is the kubectl command that makes the plan's change by hand, as
// safely: a create that fails if the object appeared meanwhile, or a merge
// patch carrying the resourceVersion read, which the API server refuses
// as a conflict if the object changed since. The resource is named with
// its API group, since both Calico groups serve felixconfigurations.
func (p *FelixOverridePlan) Command() string {
	group, _, _ := strings.Cut(p.APIVersion, "/")
	if p.Before == nil {
		obj, _ := json.Marshal(map[string]any{
			"apiVersion": p.APIVersion, "kind": "FelixConfiguration",
			"metadata": map[string]string{"name": p.Name},
			"spec":     map[string]string{featureDetectOverride: p.Override},
		})
		return "echo " + quote(string(obj)) + " | kubectl create -f -"
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]string{"resourceVersion": p.Before.Metadata.ResourceVersion},
		"spec":     map[string]string{featureDetectOverride: p.Override},
	})
	return fmt.Sprintf("kubectl patch %s.%s %s --type merge -p %s", felixResource, group, quote(p.Name), quote(string(patch)))
}

// Notes say what a person should know about the change on this install.
func (p *FelixOverridePlan) Notes() []string {
	var n []string
	switch p.Install {
	case detect.CalicoOperator:
		n = append(n, "Calico is installed by the tigera-operator: it reverts edits to calico-node's environment but leaves per-node "+
			"FelixConfigurations alone, so the change goes through "+p.Name)
	case detect.CalicoManifest:
		n = append(n, "Calico is installed from manifests: "+p.Name+" applies to this node only, where "+
			"FELIX_FEATUREDETECTOVERRIDE on calico-node would apply to every node")
	default:
		n = append(n, "nodetune could not tell an operator install from a manifest install; a per-node FelixConfiguration works for both")
	}
	if p.Before == nil {
		n = append(n, "To undo by hand: kubectl delete "+felixResource+"."+strings.SplitN(p.APIVersion, "/", 2)[0]+" "+quote(p.Name))
	}
	n = append(n, "Felix restarts itself when featureDetectOverride changes; it does not turn offload back on itself")
	return n
}

// quote quotes s for a POSIX shell when it holds anything but safe
// characters.
func quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
