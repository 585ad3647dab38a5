package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Calico's FelixConfiguration, read and written through nodetune's REST
// client. Calico serves it in two API groups: projectcalico.org/v3 through
// the Calico API server (an aggregated API that validates and defaults like
// calicoctl), and crd.projectcalico.org/v1, the CRDs Calico stores its
// objects in, which every Calico install has. nodetune prefers the first
// and falls back to the second, saying so.

// The API groups and versions of FelixConfiguration.
const (
	CalicoAPIGroup   = "projectcalico.org"
	CalicoAPIVersion = "v3"
	CalicoCRDGroup   = "crd.projectcalico.org"
	CalicoCRDVersion = "v1"
)

// felixResource is FelixConfiguration's resource name in both groups.
const felixResource = "felixconfigurations"

// ErrNoCalicoAPI means the API server serves FelixConfiguration in neither
// of Calico's API groups: Calico is not installed in this cluster.
var ErrNoCalicoAPI = errors.New("the API server serves no FelixConfiguration (neither projectcalico.org/v3 nor crd.projectcalico.org/v1)")

// ErrNoResourceVersion means an update or delete was asked for without the
// resourceVersion it must be conditional on.
var ErrNoResourceVersion = errors.New("no resourceVersion to make the write conditional on")

// FelixConfiguration is one FelixConfiguration object, kept as the API
// server sent it, so that writing it back changes only what nodetune
// changed: fields nodetune does not know (other spec settings, finalizers,
// owner references, managed fields) go back untouched.
type FelixConfiguration struct {
	// Metadata is the object's metadata, decoded for reading; changes to
	// it are not written back, except Name on create and ResourceVersion.
	Metadata ObjectMeta
	// Spec holds every spec field as the server sent it.
	Spec map[string]json.RawMessage

	raw map[string]json.RawMessage // the whole object
}

// NewFelixConfiguration returns an empty FelixConfiguration named name, to
// create.
func NewFelixConfiguration(name string) *FelixConfiguration {
	return &FelixConfiguration{Metadata: ObjectMeta{Name: name}, Spec: map[string]json.RawMessage{}}
}

// UnmarshalJSON decodes an object, keeping every field.
func (f *FelixConfiguration) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("decoding a FelixConfiguration: %w", err)
	}
	var meta ObjectMeta
	if m, ok := raw["metadata"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return fmt.Errorf("decoding a FelixConfiguration's metadata: %w", err)
		}
	}
	spec := map[string]json.RawMessage{}
	if s, ok := raw["spec"]; ok && string(s) != "null" {
		if err := json.Unmarshal(s, &spec); err != nil {
			return fmt.Errorf("decoding FelixConfiguration %s's spec: %w", meta.Name, err)
		}
	}
	*f = FelixConfiguration{Metadata: meta, Spec: spec, raw: raw}
	return nil
}

// body is the object to send in group/version: the object as read, with
// this kind and API version, its spec, and its name and resourceVersion.
func (f *FelixConfiguration) body(apiVersion string) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range f.raw {
		out[k] = v
	}
	meta := map[string]json.RawMessage{}
	if m, ok := f.raw["metadata"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, fmt.Errorf("encoding FelixConfiguration %s: %w", f.Metadata.Name, err)
		}
	}
	if meta == nil { // "metadata": null
		meta = map[string]json.RawMessage{}
	}
	name, _ := json.Marshal(f.Metadata.Name)
	meta["name"] = name
	delete(meta, "resourceVersion")
	if f.Metadata.ResourceVersion != "" {
		rv, _ := json.Marshal(f.Metadata.ResourceVersion)
		meta["resourceVersion"] = rv
	}
	out["metadata"] = meta
	out["apiVersion"] = apiVersion
	out["kind"] = "FelixConfiguration"
	spec := f.Spec
	if spec == nil {
		spec = map[string]json.RawMessage{}
	}
	out["spec"] = spec
	return out, nil
}

// SpecString returns the string spec field key, and whether it is set (to
// a string; any other JSON value is an error).
func (f *FelixConfiguration) SpecString(key string) (string, bool, error) {
	v, ok := f.Spec[key]
	if !ok || string(v) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false, fmt.Errorf("FelixConfiguration %s: spec.%s is not a string: %w", f.Metadata.Name, key, err)
	}
	return s, true, nil
}

// SetSpecString sets the string spec field key.
func (f *FelixConfiguration) SetSpecString(key, value string) {
	if f.Spec == nil {
		f.Spec = map[string]json.RawMessage{}
	}
	b, _ := json.Marshal(value)
	f.Spec[key] = b
}

// Clone returns a deep copy of f.
func (f *FelixConfiguration) Clone() *FelixConfiguration {
	if f == nil {
		return nil
	}
	c := &FelixConfiguration{Metadata: f.Metadata, Spec: map[string]json.RawMessage{}, raw: map[string]json.RawMessage{}}
	c.Metadata.Labels = cloneMap(f.Metadata.Labels)
	c.Metadata.Annotations = cloneMap(f.Metadata.Annotations)
	for k, v := range f.Spec {
		c.Spec[k] = slices.Clone(v)
	}
	for k, v := range f.raw {
		c.raw[k] = slices.Clone(v)
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// FelixConfigs reads and writes FelixConfiguration objects in one API
// group, the one Discover chose.
type FelixConfigs struct {
	c *Client
	// Group and Version are the API group and version in use.
	Group, Version string
	// Warning is set when nodetune fell back to the CRDs: why, for the
	// log and the finding.
	Warning string
}

// apiResourceList is a metav1.APIResourceList, with the resource names.
type apiResourceList struct {
	Resources []struct {
		Name string `json:"name"`
	} `json:"resources"`
}

// DiscoverFelixConfigs finds where the API server serves FelixConfiguration:
// projectcalico.org/v3 when the Calico API server is installed, otherwise
// crd.projectcalico.org/v1 with a Warning, otherwise ErrNoCalicoAPI.
func DiscoverFelixConfigs(ctx context.Context, c *Client) (*FelixConfigs, error) {
	ok, err := serves(ctx, c, CalicoAPIGroup, CalicoAPIVersion)
	if err != nil {
		return nil, err
	}
	if ok {
		return &FelixConfigs{c: c, Group: CalicoAPIGroup, Version: CalicoAPIVersion}, nil
	}
	ok, err = serves(ctx, c, CalicoCRDGroup, CalicoCRDVersion)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNoCalicoAPI
	}
	return &FelixConfigs{c: c, Group: CalicoCRDGroup, Version: CalicoCRDVersion,
		Warning: "the Calico API server (projectcalico.org/v3) is not installed: FelixConfiguration is written through Calico's CRDs " +
			"(crd.projectcalico.org/v1), which skips the validation and defaulting the Calico API server does"}, nil
}

// serves reports whether group/version lists felixconfigurations. A group
// the server does not know is a 404, and an aggregated API whose server is
// down a 503: both mean "not here".
func serves(ctx context.Context, c *Client, group, version string) (bool, error) {
	var list apiResourceList
	err := c.Get(ctx, "/apis/"+group+"/"+version, nil, &list)
	var serr *StatusError
	if errors.As(err, &serr) && (serr.Code == http.StatusNotFound || serr.Code == http.StatusServiceUnavailable) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s/%s: %w", group, version, err)
	}
	return slices.ContainsFunc(list.Resources, func(r struct {
		Name string `json:"name"`
	}) bool {
		return r.Name == felixResource
	}), nil
}

// NewFelixConfigs uses group/version without discovery.
func NewFelixConfigs(c *Client, group, version string) *FelixConfigs {
	return &FelixConfigs{c: c, Group: group, Version: version}
}

// APIVersion is group/version, as an object's apiVersion.
func (f *FelixConfigs) APIVersion() string { return f.Group + "/" + f.Version }

func (f *FelixConfigs) path(name string) string {
	return Path(f.Group, f.Version, "", felixResource, name)
}

// Get reads the FelixConfiguration name; a missing one is an error
// matching ErrNotFound.
func (f *FelixConfigs) Get(ctx context.Context, name string) (*FelixConfiguration, error) {
	var fc FelixConfiguration
	if err := f.c.Get(ctx, f.path(name), nil, &fc); err != nil {
		return nil, fmt.Errorf("reading FelixConfiguration %s (%s): %w", name, f.APIVersion(), err)
	}
	return &fc, nil
}

// Create creates fc (its name and spec) and returns it as stored; one
// that exists already is an error matching ErrAlreadyExists.
func (f *FelixConfigs) Create(ctx context.Context, fc *FelixConfiguration) (*FelixConfiguration, error) {
	c := fc.Clone()
	c.Metadata.ResourceVersion = ""
	body, err := c.body(f.APIVersion())
	if err != nil {
		return nil, err
	}
	delete(body, "status")
	var out FelixConfiguration
	if err := f.c.Post(ctx, f.path(""), body, &out); err != nil {
		return nil, fmt.Errorf("creating FelixConfiguration %s (%s): %w", fc.Metadata.Name, f.APIVersion(), err)
	}
	return &out, nil
}

// Update replaces the object with fc, on condition that it is still at
// fc's resourceVersion: a change by another writer since fc was read is
// an error matching ErrConflict, and nothing is written.
func (f *FelixConfigs) Update(ctx context.Context, fc *FelixConfiguration) (*FelixConfiguration, error) {
	if fc.Metadata.ResourceVersion == "" {
		return nil, fmt.Errorf("updating FelixConfiguration %s: %w", fc.Metadata.Name, ErrNoResourceVersion)
	}
	body, err := fc.body(f.APIVersion())
	if err != nil {
		return nil, err
	}
	var out FelixConfiguration
	if err := f.c.Put(ctx, f.path(fc.Metadata.Name), body, &out); err != nil {
		return nil, fmt.Errorf("updating FelixConfiguration %s (%s): %w", fc.Metadata.Name, f.APIVersion(), err)
	}
	return &out, nil
}

// Delete deletes the FelixConfiguration name on condition that it is still
// at resourceVersion: a change by another writer is an error matching
// ErrConflict, and the object stays.
func (f *FelixConfigs) Delete(ctx context.Context, name, resourceVersion string) error {
	if resourceVersion == "" {
		return fmt.Errorf("deleting FelixConfiguration %s: %w", name, ErrNoResourceVersion)
	}
	opts := map[string]any{
		"apiVersion":    "v1",
		"kind":          "DeleteOptions",
		"preconditions": map[string]string{"resourceVersion": resourceVersion},
	}
	if err := f.c.Do(ctx, http.MethodDelete, f.path(name), nil, "application/json", opts, nil); err != nil {
		return fmt.Errorf("deleting FelixConfiguration %s (%s): %w", name, f.APIVersion(), err)
	}
	return nil
}
