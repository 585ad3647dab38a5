// Package report turns a snapshot and its findings into what a person or
// a program reads: the doctor's text report and its JSON document.
package report

import (
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// SchemaVersion is the version of the JSON document; it changes only when
// a field is removed or changes meaning.
const SchemaVersion = 1

// Document is the doctor's report as one JSON document.
type Document struct {
	Schema    int       `json:"schema"`
	Nodetune  string    `json:"nodetune"`
	Generated time.Time `json:"generated"`
	// WindowSeconds is the span the rates were measured over.
	WindowSeconds float64           `json:"window_seconds"`
	Kernel        KernelSummary     `json:"kernel"`
	Findings      []rules.Finding   `json:"findings"`
	Unchecked     []rules.Unchecked `json:"unchecked"`
	// Peers are the last peer measurements, each marked recent or not.
	Peers []PeerSummary    `json:"peers,omitempty"`
	Facts *detect.Snapshot `json:"facts"`
}

// KernelSummary is the kernel and its verdict on the NAT checksum fix.
type KernelSummary struct {
	Release        string           `json:"release"`
	NATChecksumFix detect.FixStatus `json:"nat_checksum_fix"`
	Error          string           `json:"error,omitempty"`
}

// Build assembles the document for s and its evaluation.
func Build(version string, s *detect.Snapshot, res rules.Result) Document {
	k := KernelSummary{Release: s.Kernel.Release, NATChecksumFix: detect.FixUnknown}
	if s.Kernel.Err.Failed() {
		k.Error = s.Kernel.Err.Error()
	} else {
		k.NATChecksumFix = s.Kernel.Version.NATChecksumFix()
	}
	return Document{
		Schema:        SchemaVersion,
		Nodetune:      version,
		Generated:     s.Taken,
		WindowSeconds: s.Window.Seconds(),
		Kernel:        k,
		Findings:      res.Findings,
		Unchecked:     res.Unchecked,
		Peers:         peerSummaries(s),
		Facts:         s,
	}
}
