package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ChecksumReports are what other nodes reported about this node: tunnel
// packets from it that arrived at them with bad outer UDP checksums, read
// from the TunnelChecksumErrors Events recorded on this node's Node. The
// receiver counts the packets and traces them to their source address with
// a capture; the sender cannot see its own corrupt packets, so these
// reports are the only evidence about its own subject that it can have.
type ChecksumReports struct {
	// Node is this node's name, whose Events were read.
	Node string `json:"node"`
	// Reports are the Events' reports, every one the API server still
	// holds, old ones included: the rules decide what is recent.
	Reports []ChecksumReport `json:"reports,omitempty"`
	// Err is why the Events could not be read; the evidence is unknown then.
	Err Err `json:"error,omitzero"`
}

// ChecksumReport is one receiver's report that packets from Source to its
// tunnel port DstPort arrived with bad outer UDP checksums.
type ChecksumReport struct {
	// Receiver is the Node that received the packets.
	Receiver string `json:"receiver"`
	// Source is the packets' source address, as the receiver saw it.
	Source netip.Addr `json:"source"`
	// DstPort is the receiver's UDP port they were sent to, its tunnel's.
	DstPort uint16 `json:"dst_port"`
	// Count is how many bad packets the receiver traced to Source in all
	// the windows the report covers.
	Count uint64 `json:"count"`
	// First is when the first window of this run of bad packets began,
	// Last when the latest window that saw them ended, by the receiver's
	// clock.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// ReportFreshness is how recent a report's latest window must be, at the
// time of the snapshot, to count as evidence that this node sends corrupt
// packets now. A receiver updates its report at every probe cycle that
// sees more bad packets (serve's default interval is 30 s), so a report
// that has not moved for five minutes describes a fault that stopped.
const ReportFreshness = 5 * time.Minute

// maxClockSkew is how far ahead of the snapshot a report's time may be and
// still count as recent: the receiver's clock is not this node's.
const maxClockSkew = time.Minute

// String is "RECEIVER saw N bad packets from ADDR to :PORT (last at T)".
func (r ChecksumReport) String() string {
	return fmt.Sprintf("%s saw %d from %s to :%d (last %s)", r.Receiver, r.Count, r.Source, r.DstPort, r.Last.UTC().Format(time.RFC3339))
}

// JoinReports formats reports for a person.
func JoinReports(rs []ChecksumReport) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, "; ")
}

// Fresh reports whether r's latest window ended within ReportFreshness
// before at, or at most maxClockSkew after it.
func (r ChecksumReport) Fresh(at time.Time) bool {
	age := at.Sub(r.Last)
	return age <= ReportFreshness && age >= -maxClockSkew
}

// SourceAddrs are the addresses tunnel t's packets leave this node from:
// its local address when it is bound to one, else the addresses of its
// underlay device. known is false when neither could be read, and then no
// report can be matched to t.
func (t Tunnel) SourceAddrs() (addrs []netip.Addr, known bool) {
	if t.Local.IsValid() {
		return []netip.Addr{t.Local}, true
	}
	if t.Underlay == nil || t.Underlay.AddrsErr.Failed() || t.Underlay.Addrs == nil {
		return nil, false
	}
	return t.Underlay.Addrs, true
}

// ReportsAbout returns the reports of rs that are about tunnel t: sent to
// t's UDP port from an address t's packets leave from. Reports to another
// port, or from an address that is not t's, are about something else (a
// tunnel of another node behind the same address, an unrelated service)
// and say nothing about t. known is false when t's source addresses could
// not be read while some report names t's port: nodetune cannot tell then.
func (rs *ChecksumReports) ReportsAbout(t Tunnel) (about []ChecksumReport, known bool) {
	if rs == nil || t.Port <= 0 || t.Port > 0xffff {
		return nil, true
	}
	addrs, addrsKnown := t.SourceAddrs()
	for _, r := range rs.Reports {
		if int(r.DstPort) != t.Port {
			continue
		}
		if !addrsKnown {
			return nil, false
		}
		if slices.Contains(addrs, r.Source.Unmap()) {
			about = append(about, r)
		}
	}
	return about, true
}

// FreshReports are the reports of rs that are recent at at.
func FreshReports(rs []ChecksumReport, at time.Time) []ChecksumReport {
	var out []ChecksumReport
	for _, r := range rs {
		if r.Fresh(at) {
			out = append(out, r)
		}
	}
	return out
}
