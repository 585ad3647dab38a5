package kube

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
	LastHeartbeatTime  Time              `json:"lastHeartbeatTime,omitempty"`
	LastTransitionTime Time              `json:"lastTransitionTime,omitempty"`
	Reason             string            `json:"reason,omitempty"`
	Message            string            `json:"message,omitempty"`
}

// node is a core/v1 Node: its metadata (name, UID, labels) and conditions.
type node struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Status     nodeStatus `json:"status,omitempty"`
}

type nodeStatus struct {
	Conditions []NodeCondition `json:"conditions,omitempty"`
}

// nodeList is a core/v1 NodeList, what the watch lists.
type nodeList struct {
	TypeMeta `json:",inline"`
	ListMeta `json:"metadata,omitempty"`
	Items    []node `json:"items"`
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
	Count            int32     `json:"count"`
	LastObservedTime MicroTime `json:"lastObservedTime"`
}

// event is an events.k8s.io/v1 Event, with the fields nodetune sets.
type event struct {
	TypeMeta            `json:",inline"`
	ObjectMeta          `json:"metadata,omitempty"`
	EventTime           MicroTime       `json:"eventTime"`
	Series              *eventSeries    `json:"series,omitempty"`
	ReportingController string          `json:"reportingController,omitempty"`
	ReportingInstance   string          `json:"reportingInstance,omitempty"`
	Action              string          `json:"action,omitempty"`
	Reason              string          `json:"reason,omitempty"`
	Regarding           objectReference `json:"regarding"`
	Note                string          `json:"note,omitempty"`
	Type                string          `json:"type,omitempty"`
}

// eventList is an events.k8s.io/v1 EventList.
type eventList struct {
	TypeMeta `json:",inline"`
	ListMeta `json:"metadata,omitempty"`
	Items    []event `json:"items"`
}
