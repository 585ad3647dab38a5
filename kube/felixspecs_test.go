package kube

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// TestFelixSpecsRealAPIServer: the client tune's Felix kind writes through,
// on the real API server with Calico's CRDs: it reads a missing object as
// absent, creates, updates only from the resourceVersion read (another
// writer in between is ErrConflict, and its change stays), keeps the
// object's metadata, and deletes on the same condition. The plan worked
// out from the objects in a snapshot (OverridePlanFrom, no I/O) is the plan
// PlanNodeOverride reads from the server.
func TestFelixSpecsRealAPIServer(t *testing.T) {
	c, fcs := calicoCluster(t)
	ctx := context.Background()
	setDefault(t, fcs, `{"vxlanEnabled":true,"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=true"}`)
	s := FelixSpecs{fcs}
	name := FelixNodeName("specs-1")
	t.Cleanup(func() {
		if cur, err := fcs.Get(context.Background(), name); err == nil {
			_ = fcs.Delete(context.Background(), name, cur.Metadata.ResourceVersion)
		}
	})
	if _, _, ok, err := s.GetSpec(ctx, name); ok || err != nil {
		t.Fatalf("a missing object: exists %v, %v", ok, err)
	}
	objs := ReadFelixObjects(ctx, fcs, "specs-1")
	if objs.Err.Failed() || !objs.Default.Exists || objs.NodeObj.Exists || objs.APIVersion != fcs.APIVersion() {
		t.Fatalf("objects read: %+v", objs)
	}
	spec, err := objs.NodeOverrideSpec(detect.FelixOverrideKey, "false")
	if err != nil {
		t.Fatal(err)
	}
	fromSnapshot, err := OverridePlanFrom(objs, spec, detect.CalicoOperator)
	if err != nil {
		t.Fatal(err)
	}
	fromServer, err := fcs.PlanNodeOverride(ctx, "specs-1", detect.FelixOverrideKey, "false", detect.CalicoOperator)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{fromServer.Diff(), fromServer.Command()}, []string{fromSnapshot.Diff(), fromSnapshot.Command()}); diff != "" {
		t.Errorf("plan from the snapshot differs from the server's (-server +snapshot):\n%s", diff)
	}

	if err := s.CreateSpec(ctx, name, `{"logSeverityScreen":"Info"}`); err != nil {
		t.Fatal(err)
	}
	got, rv, ok, err := s.GetSpec(ctx, name)
	if err != nil || !ok || got != `{"logSeverityScreen":"Info"}` {
		t.Fatalf("after create: %q %v %v", got, ok, err)
	}
	// Another writer labels it (and so changes its resourceVersion); the
	// label survives nodetune's update.
	if out, err := c.Kubectl(t, c.Dir, "label", "felixconfigurations.crd.projectcalico.org", name, "team=net"); err != nil {
		t.Fatalf("kubectl label: %v\n%s", err, out)
	}
	if err := s.UpdateSpec(ctx, name, rv, `{"a":1}`); !errors.Is(err, ErrConflict) {
		t.Fatalf("an update from a stale resourceVersion: %v, want ErrConflict", err)
	}
	if got, _, _, _ := s.GetSpec(ctx, name); got != `{"logSeverityScreen":"Info"}` {
		t.Fatalf("the stale update wrote %s", got)
	}
	_, rv, _, _ = s.GetSpec(ctx, name)
	if err := s.UpdateSpec(ctx, name, rv, spec); err != nil {
		t.Fatal(err)
	}
	after, err := fcs.Get(ctx, name)
	if err != nil || after.Metadata.Labels["team"] != "net" {
		t.Fatalf("labels after nodetune's update: %v, %v", after.Metadata.Labels, err)
	}
	if got, _, _, _ := s.GetSpec(ctx, name); !detect.FelixValuesEqual(got, spec) {
		t.Fatalf("spec %s, want %s", got, spec)
	}
	if err := s.DeleteObject(ctx, name, rv); !errors.Is(err, ErrConflict) {
		t.Fatalf("a delete from a stale resourceVersion: %v, want ErrConflict", err)
	}
	_, rv, _, _ = s.GetSpec(ctx, name)
	if err := s.DeleteObject(ctx, name, rv); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.GetSpec(ctx, name); ok || err != nil {
		t.Fatalf("after delete: exists %v, %v", ok, err)
	}
}
