package kube

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestTypesMatchAPI checks the API fields types.go declares against
// k8s.io/api's types (which the tests may link; the binary does not):
// every field nodetune writes decodes strictly into the API's type, and a
// Node from the API decodes into nodetune's with the fields it reads.
func TestTypesMatchAPI(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	now, micro := NewTime(at), NewMicroTime(at)
	apiNow, apiMicro := metav1.NewTime(now.Time), metav1.NewMicroTime(micro.Time)
	ev := event{
		ObjectMeta:          ObjectMeta{Name: "n.1", Namespace: "default"},
		EventTime:           micro,
		Series:              &eventSeries{Count: 2, LastObservedTime: micro},
		ReportingController: Controller,
		ReportingInstance:   "nodetune-n",
		Action:              "Remediate",
		Reason:              "RemediationApplied",
		Regarding:           objectReference{Kind: "Node", APIVersion: "v1", Name: "n", UID: "u"},
		Note:                "note",
		Type:                eventTypeNormal,
	}
	var apiEvent eventsv1.Event
	roundTrip(t, &ev, &apiEvent)
	want := eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "n.1", Namespace: "default"}, EventTime: apiMicro,
		Series:              &eventsv1.EventSeries{Count: 2, LastObservedTime: apiMicro},
		ReportingController: Controller, ReportingInstance: "nodetune-n", Action: "Remediate",
		Reason: "RemediationApplied", Note: "note", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: "n", UID: "u"},
	}
	if diff := cmp.Diff(want, apiEvent); diff != "" {
		t.Errorf("event as the API reads it (-want +got):\n%s", diff)
	}

	c := NodeCondition{Type: ConditionType, Status: ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now, Reason: "R", Message: "m"}
	var apiCond corev1.NodeCondition
	roundTrip(t, &c, &apiCond)
	if diff := cmp.Diff(corev1.NodeCondition{Type: ConditionType, Status: corev1.ConditionTrue,
		LastHeartbeatTime: apiNow, LastTransitionTime: apiNow, Reason: "R", Message: "m"}, apiCond); diff != "" {
		t.Errorf("condition as the API reads it (-want +got):\n%s", diff)
	}

	apiNode := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n", UID: "u", ResourceVersion: "7", Labels: map[string]string{ModeLabel: ModeObserve}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.0.0.0/24"},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{apiCond}, Phase: corev1.NodeRunning},
	}
	data, err := json.Marshal(apiNode)
	if err != nil {
		t.Fatal(err)
	}
	var n node
	if err := json.Unmarshal(data, &n); err != nil {
		t.Fatal(err)
	}
	wantNode := node{ObjectMeta: ObjectMeta{Name: "n", UID: "u", ResourceVersion: "7", Labels: map[string]string{ModeLabel: ModeObserve}},
		Status: nodeStatus{Conditions: []NodeCondition{c}}}
	if diff := cmp.Diff(wantNode, n, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("Node as nodetune reads it (-want +got):\n%s", diff)
	}
}

// roundTrip encodes ours as JSON and decodes it strictly into theirs: a
// field name the API does not have fails.
func roundTrip(t *testing.T, ours, theirs any) {
	t.Helper()
	data, err := json.Marshal(ours)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, theirs); err != nil {
		t.Errorf("%T does not decode strictly into %T: %v\n%s", ours, theirs, err, data)
	}
}

// TestTimesMatchAPI: Time and MicroTime encode as metav1's do, zero as
// null, and read back what metav1 writes.
func TestTimesMatchAPI(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	for _, tc := range []struct {
		ours, theirs any
	}{
		{NewTime(at), metav1.NewTime(at)},
		{NewMicroTime(at), metav1.NewMicroTime(at)},
		{Time{}, metav1.Time{}},
		{MicroTime{}, metav1.MicroTime{}},
	} {
		a, err := json.Marshal(tc.ours)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(tc.theirs)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("%T encodes as %s, metav1 as %s", tc.ours, a, b)
		}
	}
	var mt MicroTime
	if err := json.Unmarshal([]byte(`"2026-01-02T02:04:05.123456Z"`), &mt); err != nil || !mt.Equal(NewMicroTime(at).Time) {
		t.Errorf("MicroTime read %v, %v; want %v", mt, err, NewMicroTime(at))
	}
	var tm Time
	if err := json.Unmarshal([]byte(`null`), &tm); err != nil || !tm.IsZero() {
		t.Errorf("null read as %v, %v", tm, err)
	}
	if err := json.Unmarshal([]byte(`"yesterday"`), &tm); err == nil {
		t.Error("a bad time read without error")
	}
}
