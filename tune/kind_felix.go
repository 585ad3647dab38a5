package tune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// FelixClient is what the Felix override kind needs of the Kubernetes API:
// this node's FelixConfiguration read, created, updated and deleted, each
// write conditional on the resourceVersion read. Specs are JSON objects.
// The kube package implements it; tune never imports kube.
type FelixClient interface {
	// APIVersion is the group/version the objects are written in.
	APIVersion() string
	// GetSpec returns name's spec and resourceVersion; exists is false,
	// with a nil error, when there is no such object.
	GetSpec(ctx context.Context, name string) (spec, resourceVersion string, exists bool, err error)
	// CreateSpec creates name with spec; it fails if name exists.
	CreateSpec(ctx context.Context, name, spec string) error
	// UpdateSpec replaces name's spec, on condition that its
	// resourceVersion is still resourceVersion.
	UpdateSpec(ctx context.Context, name, resourceVersion, spec string) error
	// DeleteObject deletes name, on the same condition.
	DeleteObject(ctx context.Context, name, resourceVersion string) error
}

// FelixSetting is the Setting of a Felix override key: the whole spec of
// node.<name> is its value.
const FelixSetting = "spec"

// felixEntry is the one featureDetectOverride entry nodetune may set.
const felixEntry = detect.FelixOverrideKey + "=false"

// felixName is a FelixConfiguration name nodetune may write: node.<name>,
// a DNS subdomain.
var felixName = regexp.MustCompile(`^node\.[a-z0-9]([-a-z0-9.]{0,240}[a-z0-9])?$`)

// FelixKind is this node's own FelixConfiguration, node.<name>, whose
// featureDetectOverride tells Felix that the kernel's checksum offload is
// not broken, so that Felix leaves the tunnel's tx checksum offload alone.
// Its value is the object's whole spec (canonical JSON), or
// detect.FelixAbsent when the object does not exist: the journal records
// the original spec, rollback writes it back (or deletes the object
// nodetune created), and every write is conditional on the
// resourceVersion of the read just before it, so another writer's change
// in between fails as a conflict rather than being overwritten.
type FelixKind struct {
	c  FelixClient
	mu sync.Mutex
	// read is the resourceVersion of each object's last Read ("" when it
	// did not exist), which its next Write is conditional on.
	read map[string]string
}

// NewFelixKind returns the Felix override kind writing through c. Register
// it in Host.More; its name is its own, so it never stands in for a
// built-in kind.
func NewFelixKind(c FelixClient) *FelixKind {
	return &FelixKind{c: c, read: map[string]string{}}
}

// FelixKey is the key of node's FelixConfiguration.
func FelixKey(node string) Key {
	return Key{Kind: rules.ChangeFelixConfiguration, Target: "node." + node, Setting: FelixSetting}
}

func (*FelixKind) Name() string         { return rules.ChangeFelixConfiguration }
func (*FelixKind) Irreversible() string { return "" }
func (*FelixKind) PerNetNS() bool       { return false }
func (*FelixKind) Stepwise() bool       { return false }
func (*FelixKind) Equal(a, b string) bool {
	return detect.FelixValuesEqual(a, b)
}

// OwnedApart says why the finding's owner (Felix, of the device) does not
// own this setting: the FelixConfiguration object is the way Felix itself
// is told, and no agent reverts it.
func (*FelixKind) OwnedApart() string {
	return "the FelixConfiguration is Felix's own configuration, which it reads and does not revert"
}

// Vet checks a Felix override: only node.<this node>, only
// ChecksumOffloadBroken=false (the finding's value), only where tune's
// offload gate lets tx checksum offload of the finding's device on, and
// only from objects read into the snapshot. It computes the spec to write
// from them, every other key kept, and fills From with the spec read (or
// detect.FelixAbsent). A malformed spec or override string refuses the
// change: nothing is written from objects nodetune does not understand.
func (*FelixKind) Vet(s *detect.Snapshot, c *Change) Refusal {
	f := s.Felix
	if c.Setting != FelixSetting || !felixName.MatchString(c.Target) {
		return refuse(ReasonAllowlist, "FelixConfiguration %q %s is not one nodetune may write (node.<name>'s spec only)", c.Target, c.Setting)
	}
	if c.To != felixEntry {
		return refuse(ReasonAllowlist, "featureDetectOverride entry %q is not on nodetune's allowlist (only %s)", c.To, felixEntry)
	}
	if !f.Read {
		return refuse(ReasonUnknown, "the FelixConfigurations were not read: nodetune writes %s only with --calico.cooperate", c.Target)
	}
	if f.Err.Failed() {
		return refuse(ReasonUnknown, "the FelixConfigurations could not be read: %s", f.Err.Error())
	}
	if c.Target != "node."+f.Node {
		return refuse(ReasonAllowlist, "%s is not this node's FelixConfiguration (node.%s)", c.Target, f.Node)
	}
	if r := offloadGate(s, c.Subject); r.Refused() {
		return r
	}
	to, err := f.NodeOverrideSpec(detect.FelixOverrideKey, "false")
	if err != nil {
		return refuse(ReasonGate, "%s cannot be worked out safely, so nothing is written: %v", c.Target, err)
	}
	c.From, c.To = f.NodeObj.Value(), to
	c.Notes = append(c.Notes, fmt.Sprintf("Felix restarts itself when featureDetectOverride changes; from then on it leaves %s's offload alone, "+
		"and nodetune turns it on once (%s)", c.Subject, f.APIVersion))
	if f.Warning != "" {
		c.Notes = append(c.Notes, f.Warning)
	}
	return Refusal{}
}

// Cooperates says, for a change to a setting the finding names Felix as
// the owner of, whether Felix no longer fights it, and why: tx checksum
// offload turned on, with no other owner, where the journal holds
// nodetune's open, written override of node.<name> carrying
// ChecksumOffloadBroken=false and the snapshot shows that override in
// place. Then the change is planned; without it, the owner gate refuses.
func (*FelixKind) Cooperates(s *detect.Snapshot, c Change, claims []Entry) (string, bool) {
	if c.Owner == nil || c.Owner.Name != detect.OwnerFelix || len(c.Owner.Also) > 0 ||
		c.Kind != rules.ChangeFeature || c.Setting != detect.FeatureTxChecksumGeneric || c.To != on {
		return "", false
	}
	f := s.Felix
	if !f.Read || f.Err.Failed() || f.Node == "" {
		return "", false
	}
	want := FelixKey(f.Node)
	for _, e := range claims {
		if e.Key != want || !e.Open() || e.State == evIntent || !detect.OverrideInForce(e.To, detect.FelixOverrideKey, "false") {
			continue
		}
		if !detect.FelixValuesEqual(f.NodeObj.Value(), e.To) {
			continue
		}
		return fmt.Sprintf("calico-felix owns this setting, but nodetune's override in %s (journal entry %d) tells it the kernel's "+
			"checksum offload is not broken, so it leaves the device alone", want.Target, e.ID), true
	}
	return "", false
}

// Command is the kubectl command that writes value to the object by hand.
func (k *FelixKind) Command(key Key, value string) string {
	group, _, _ := strings.Cut(k.apiVersion(), "/")
	resource := "felixconfigurations." + group
	if value == detect.FelixAbsent {
		return "kubectl delete " + resource + " " + shellWord(key.Target)
	}
	spec, err := detect.FelixSpec(value)
	if err != nil {
		// A finding's value, before Vet works out the spec from the
		// objects read.
		return "# " + key.Target + ": featureDetectOverride " + value + ", with the other keys Felix applies on the node kept (nodetune fix --dry-run shows the spec)"
	}
	obj, err := json.Marshal(map[string]any{
		"apiVersion": k.apiVersion(), "kind": "FelixConfiguration",
		"metadata": map[string]string{"name": key.Target}, "spec": json.RawMessage(spec),
	})
	if err != nil {
		return "# " + key.Target + ": " + err.Error()
	}
	return "echo " + shellWord(string(obj)) + " | kubectl apply -f -"
}

func (k *FelixKind) apiVersion() string {
	if k == nil || k.c == nil {
		return "crd.projectcalico.org/v1"
	}
	return k.c.APIVersion()
}

// shellWord quotes s for a POSIX shell.
func shellWord(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// errNoFelixClient is the I/O of a Felix kind built without a client.
var errNoFelixClient = fmt.Errorf("no Kubernetes client to change a FelixConfiguration: %w", detect.ErrNotSupported)

func (k *FelixKind) valid(key Key) error {
	if key.Setting != FelixSetting || !felixName.MatchString(key.Target) {
		return fmt.Errorf("FelixConfiguration %q %s: %w", key.Target, key.Setting, ErrNotAllowed)
	}
	if k.c == nil {
		return errNoFelixClient
	}
	return nil
}

// Read returns the object's spec (or detect.FelixAbsent), and remembers its
// resourceVersion for the next Write.
func (k *FelixKind) Read(ctx context.Context, key Key) (Value, error) {
	if err := k.valid(key); err != nil {
		return Value{}, err
	}
	spec, rv, exists, err := k.c.GetSpec(ctx, key.Target)
	if err != nil {
		return Value{}, fmt.Errorf("reading FelixConfiguration %s: %w", key.Target, err)
	}
	v := detect.FelixAbsent
	if exists {
		if v, err = detect.FelixSpec(spec); err != nil {
			return Value{}, fmt.Errorf("reading FelixConfiguration %s: %w", key.Target, err)
		}
		if rv == "" {
			return Value{}, fmt.Errorf("reading FelixConfiguration %s: no resourceVersion to make a write conditional on", key.Target)
		}
	}
	k.mu.Lock()
	k.read[key.Target] = rv
	k.mu.Unlock()
	return Value{Set: v, Effective: v}, nil
}

// Writable checks the key; what the API server allows is known only when
// it answers the write.
func (k *FelixKind) Writable(ctx context.Context, key Key) error { return k.valid(key) }

// ErrFelixUnread marks a write to a FelixConfiguration not read first, so
// there is no resourceVersion to make it conditional on.
var ErrFelixUnread = errors.New("not read before the write")

// Write creates, updates or deletes the object so that its spec is value,
// conditional on the object being as the last Read found it.
func (k *FelixKind) Write(ctx context.Context, key Key, value string) error {
	if err := k.valid(key); err != nil {
		return err
	}
	k.mu.Lock()
	rv, ok := k.read[key.Target]
	delete(k.read, key.Target) // one write per read
	k.mu.Unlock()
	if !ok {
		return fmt.Errorf("writing FelixConfiguration %s: %w", key.Target, ErrFelixUnread)
	}
	var err error
	switch {
	case value == detect.FelixAbsent && rv == "":
		return nil // absent, and to stay so
	case value == detect.FelixAbsent:
		err = k.c.DeleteObject(ctx, key.Target, rv)
	case rv == "":
		if value, err = detect.FelixSpec(value); err == nil {
			err = k.c.CreateSpec(ctx, key.Target, value)
		}
	default:
		if value, err = detect.FelixSpec(value); err == nil {
			err = k.c.UpdateSpec(ctx, key.Target, rv, value)
		}
	}
	if err != nil {
		return fmt.Errorf("writing FelixConfiguration %s: %w", key.Target, err)
	}
	return nil
}
