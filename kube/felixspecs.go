package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nodetune/nodetune/detect"
)

// FelixSpecs is FelixConfigs seen as specs and resourceVersions, what
// tune's Felix override kind writes through (tune.FelixClient).
type FelixSpecs struct{ F *FelixConfigs }

// APIVersion is the group/version the objects are written in.
func (s FelixSpecs) APIVersion() string { return s.F.APIVersion() }

// GetSpec returns name's spec as JSON and its resourceVersion; exists is
// false, with a nil error, when there is no such object.
func (s FelixSpecs) GetSpec(ctx context.Context, name string) (string, string, bool, error) {
	fc, err := s.F.Get(ctx, name)
	if IsNotFound(err) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	b, err := json.Marshal(specOf(fc))
	if err != nil {
		return "", "", false, fmt.Errorf("encoding FelixConfiguration %s's spec: %w", name, err)
	}
	return string(b), fc.Metadata.ResourceVersion, true, nil
}

func specOf(fc *FelixConfiguration) map[string]json.RawMessage {
	if fc.Spec == nil {
		return map[string]json.RawMessage{}
	}
	return fc.Spec
}

// CreateSpec creates name with spec; one that exists is an error matching
// ErrAlreadyExists.
func (s FelixSpecs) CreateSpec(ctx context.Context, name, spec string) error {
	fc := NewFelixConfiguration(name)
	if err := json.Unmarshal([]byte(spec), &fc.Spec); err != nil {
		return fmt.Errorf("creating FelixConfiguration %s: %w: %v", name, detect.ErrFelixSpec, err)
	}
	_, err := s.F.Create(ctx, fc)
	return err
}

// UpdateSpec replaces name's spec, keeping its metadata, on condition
// that it is still at resourceVersion: another writer's change since is
// an error matching ErrConflict, and nothing is written.
func (s FelixSpecs) UpdateSpec(ctx context.Context, name, resourceVersion, spec string) error {
	fc, err := s.F.Get(ctx, name)
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(spec), &m); err != nil || m == nil {
		return fmt.Errorf("updating FelixConfiguration %s: %w: %v", name, detect.ErrFelixSpec, err)
	}
	fc.Spec = m
	fc.Metadata.ResourceVersion = resourceVersion
	_, err = s.F.Update(ctx, fc)
	return err
}

// DeleteObject deletes name on the same condition.
func (s FelixSpecs) DeleteObject(ctx context.Context, name, resourceVersion string) error {
	return s.F.Delete(ctx, name, resourceVersion)
}

// ReadFelixObjects reads default and node.<node> into the snapshot's
// form: what tune plans the override from, with no I/O of its own.
func ReadFelixObjects(ctx context.Context, f *FelixConfigs, node string) detect.FelixObjects {
	out := detect.FelixObjects{Read: true, APIVersion: f.APIVersion(), Warning: f.Warning, Node: node}
	read := func(name string) (detect.FelixObject, error) {
		spec, rv, ok, err := FelixSpecs{f}.GetSpec(ctx, name)
		if err != nil || !ok {
			return detect.FelixObject{}, err
		}
		c, err := detect.FelixSpec(spec)
		if err != nil {
			return detect.FelixObject{}, fmt.Errorf("FelixConfiguration %s: %w", name, err)
		}
		return detect.FelixObject{Exists: true, ResourceVersion: rv, Spec: c}, nil
	}
	var err error
	if out.Default, err = read(FelixDefault); err != nil {
		out.Err = detect.Fail(err)
		return out
	}
	if node == "" {
		out.Err = detect.Fail(fmt.Errorf("the node's name is unknown: %w", detect.ErrNotSupported))
		return out
	}
	if out.NodeObj, err = read(FelixNodeName(node)); err != nil {
		out.Err = detect.Fail(err)
	}
	return out
}

// OverridePlanFrom is the plan of writing spec to node.<name>, worked out
// from the objects read into a snapshot, with no I/O: what doctor and fix
// --dry-run show (its Diff, Command and Notes). install is the Calico
// install type detected on the node.
func OverridePlanFrom(objs detect.FelixObjects, spec, install string) (*FelixOverridePlan, error) {
	name := FelixNodeName(objs.Node)
	after := NewFelixConfiguration(name)
	if err := json.Unmarshal([]byte(spec), &after.Spec); err != nil || after.Spec == nil {
		return nil, fmt.Errorf("FelixConfiguration %s: %w: %v", name, detect.ErrFelixSpec, err)
	}
	override, _, err := after.SpecString(featureDetectOverride)
	if err != nil {
		return nil, err
	}
	p := &FelixOverridePlan{Name: name, APIVersion: objs.APIVersion, After: after, Override: override, Install: install, Changed: true}
	if objs.NodeObj.Exists {
		before := NewFelixConfiguration(name)
		before.Metadata.ResourceVersion = objs.NodeObj.ResourceVersion
		if err := json.Unmarshal([]byte(objs.NodeObj.Spec), &before.Spec); err != nil || before.Spec == nil {
			return nil, fmt.Errorf("FelixConfiguration %s: %w: %v", name, detect.ErrFelixSpec, err)
		}
		after.Metadata.ResourceVersion = before.Metadata.ResourceVersion
		p.Before = before
		p.Changed = !detect.FelixValuesEqual(objs.NodeObj.Spec, spec)
	}
	return p, nil
}
