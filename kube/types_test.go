package kube

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// TestTypesMatchAPI checks the API fields types.go declares against
// k8s.io/api's types (which the tests may link; the binary does not):
// every field nodetune writes decodes strictly into the API's type, and a
// Node from the API decodes into nodetune's with the fields it reads.
func TestTypesMatchAPI(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	micro := metav1.NewMicroTime(now.Time)
	ev := event{
		ObjectMeta:          metav1.ObjectMeta{Name: "n.1", Namespace: "default"},
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
		ObjectMeta: metav1.ObjectMeta{Name: "n.1", Namespace: "default"}, EventTime: micro,
		Series:              &eventsv1.EventSeries{Count: 2, LastObservedTime: micro},
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
		LastHeartbeatTime: now, LastTransitionTime: now, Reason: "R", Message: "m"}, apiCond); diff != "" {
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
	if diff := cmp.Diff(node{ObjectMeta: apiNode.ObjectMeta, Status: nodeStatus{Conditions: []NodeCondition{c}}}, n); diff != "" {
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

// TestSchemeKinds: the client's scheme knows nodetune's types by the API's
// kind names (the watch lists NodeList), and copies are deep.
func TestSchemeKinds(t *testing.T) {
	for kind, obj := range map[string]runtime.Object{
		"Node": &node{}, "NodeList": &nodeList{}, "Event": &event{}, "EventList": &eventList{},
	} {
		gvks, _, err := clientScheme.ObjectKinds(obj)
		if err != nil || len(gvks) != 1 || gvks[0].Kind != kind {
			t.Errorf("%T: kinds %v, %v; want %s", obj, gvks, err, kind)
		}
	}
	n := &node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
		Status: nodeStatus{Conditions: []NodeCondition{{Reason: "R"}}}}
	c := n.DeepCopyObject().(*node)
	c.Labels["a"] = "changed"
	c.Status.Conditions[0].Reason = "changed"
	if n.Labels["a"] != "b" || n.Status.Conditions[0].Reason != "R" {
		t.Error("DeepCopyObject shares the labels or conditions")
	}
	l := (&nodeList{Items: []node{*n}}).DeepCopyObject().(*nodeList)
	l.Items[0].Labels["a"] = "changed"
	if n.Labels["a"] != "b" {
		t.Error("the list's DeepCopyObject shares its items' labels")
	}
	e := &event{Series: &eventSeries{Count: 2}}
	e.DeepCopyObject().(*event).Series.Count = 3
	if e.Series.Count != 2 {
		t.Error("the event's DeepCopyObject shares its series")
	}
}
