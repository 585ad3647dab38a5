package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The few fields of the Kubernetes API that nodetune reads and writes,
// declared here rather than imported from k8s.io/api. Linking
// k8s.io/api/core/v1 links every core type (its init registers all of them
// with gogo protobuf, so none is dead code): about 3 MiB more binary that
// every nodetune command maps at start, cluster or not. The JSON names are
// the API's; fields nodetune does not use are left out, and the API server
// keeps them (the agent only patches Node status and creates events).

// NodeConditionType is the type of a Node condition.
type NodeConditionType string

// ConditionStatus is a condition's status: "True", "False" or "Unknown".
type ConditionStatus string

// The condition statuses nodetune sets.
const (
	ConditionTrue  ConditionStatus = "True"
	ConditionFalse ConditionStatus = "False"
)

// NodeCondition is one entry of a Node's status.conditions (core/v1).
type NodeCondition struct {
	Type               NodeConditionType `json:"type"`
	Status             ConditionStatus   `json:"status"`
	LastHeartbeatTime  metav1.Time       `json:"lastHeartbeatTime,omitempty"`
	LastTransitionTime metav1.Time       `json:"lastTransitionTime,omitempty"`
	Reason             string            `json:"reason,omitempty"`
	Message            string            `json:"message,omitempty"`
}

// node is a core/v1 Node: its metadata (name, UID, labels) and conditions.
type node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            nodeStatus `json:"status,omitempty"`
}

type nodeStatus struct {
	Conditions []NodeCondition `json:"conditions,omitempty"`
}

// nodeList is a core/v1 NodeList, what the watch lists.
type nodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []node `json:"items"`
}

// The event types of events.k8s.io/v1.
const (
	eventTypeNormal  = "Normal"
	eventTypeWarning = "Warning"
)

// objectReference is what an event is about (core/v1 ObjectReference).
type objectReference struct {
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name,omitempty"`
	UID        string `json:"uid,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// eventSeries is an events.k8s.io/v1 EventSeries.
type eventSeries struct {
	Count            int32            `json:"count"`
	LastObservedTime metav1.MicroTime `json:"lastObservedTime"`
}

// event is an events.k8s.io/v1 Event, with the fields nodetune sets.
type event struct {
	metav1.TypeMeta     `json:",inline"`
	metav1.ObjectMeta   `json:"metadata,omitempty"`
	EventTime           metav1.MicroTime `json:"eventTime"`
	Series              *eventSeries     `json:"series,omitempty"`
	ReportingController string           `json:"reportingController,omitempty"`
	ReportingInstance   string           `json:"reportingInstance,omitempty"`
	Action              string           `json:"action,omitempty"`
	Reason              string           `json:"reason,omitempty"`
	Regarding           objectReference  `json:"regarding"`
	Note                string           `json:"note,omitempty"`
	Type                string           `json:"type,omitempty"`
}

// eventList is an events.k8s.io/v1 EventList.
type eventList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []event `json:"items"`
}

// The group versions nodetune talks to.
var (
	coreV1   = schema.GroupVersion{Version: "v1"}
	eventsV1 = schema.GroupVersion{Group: "events.k8s.io", Version: "v1"}
)

// addKnownTypes registers the types above, and the meta types every group
// version needs (options, watch events, status), with s.
func addKnownTypes(s *runtime.Scheme) error {
	// By the API's kind names: AddKnownTypes would take the Go names.
	s.AddKnownTypeWithName(coreV1.WithKind("Node"), &node{})
	s.AddKnownTypeWithName(coreV1.WithKind("NodeList"), &nodeList{})
	s.AddKnownTypeWithName(eventsV1.WithKind("Event"), &event{})
	s.AddKnownTypeWithName(eventsV1.WithKind("EventList"), &eventList{})
	metav1.AddToGroupVersion(s, coreV1)
	metav1.AddToGroupVersion(s, eventsV1)
	return nil
}

// DeepCopyObject copies the Node.
func (n *node) DeepCopyObject() runtime.Object {
	c := &node{TypeMeta: n.TypeMeta}
	n.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	c.Status.Conditions = append([]NodeCondition(nil), n.Status.Conditions...)
	return c
}

// DeepCopyObject copies the list.
func (l *nodeList) DeepCopyObject() runtime.Object {
	c := &nodeList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	for i := range l.Items {
		c.Items = append(c.Items, *l.Items[i].DeepCopyObject().(*node))
	}
	return c
}

// DeepCopyObject copies the event.
func (e *event) DeepCopyObject() runtime.Object {
	c := *e
	e.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	if e.Series != nil {
		s := *e.Series
		c.Series = &s
	}
	return &c
}

// DeepCopyObject copies the list.
func (l *eventList) DeepCopyObject() runtime.Object {
	c := &eventList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	for i := range l.Items {
		c.Items = append(c.Items, *l.Items[i].DeepCopyObject().(*event))
	}
	return c
}
