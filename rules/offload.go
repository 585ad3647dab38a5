package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// PublishedChecksumOffLoss is the share of VXLAN throughput lost with tx
// checksum offload off in nodetune's veth testbed: iperf3 between two
// namespaces on kernel 6.18, 30.5 Gbit/s on, 6.9 Gbit/s off. It is the top
// of the published range, not a figure for every node.
const PublishedChecksumOffLoss = 0.77

// EstimatedChecksumOffLoss is the loss a finding quotes when nothing was
// measured on the node: the hardware figure of the range, Calico VXLAN at
// 2.9 Gbit/s with offload off against about 6 Gbit/s with it on.
const EstimatedChecksumOffLoss = 0.52

// estimatedLossSource says where the estimate comes from and how far it
// is from holding on every node.
const estimatedLossSource = "estimate, not measured on this node: about half on hardware (Calico VXLAN 2.9 vs about 6 Gbit/s), " +
	"77% in a veth testbed on kernel 6.18 (6.9 vs 30.5 Gbit/s); on some NICs offload made no difference " +
	"(projectcalico/calico issue 9645) or was about 30 times slower with it on (projectcalico/calico issue 11435). " +
	"`nodetune bench` measures this node"

// checksumOffLoss is the loss a tunnel-tx-checksum-off finding quotes, how
// to say it, and its source: the figure measured on this node when there
// is one, else the published estimate, worded as one.
func checksumOffLoss(c Config) (loss float64, says, source string) {
	if c.MeasuredLoss > 0 {
		return c.MeasuredLoss, fmt.Sprintf("measured on this node: the tunnel loses %.0f%% of its throughput", c.MeasuredLoss*100),
			"measured on this node by nodetune bench"
	}
	return EstimatedChecksumOffLoss, fmt.Sprintf("estimated %.0f%% to %.0f%% of the tunnel's throughput elsewhere, not measured here",
		EstimatedChecksumOffLoss*100, PublishedChecksumOffLoss*100), estimatedLossSource
}

var checksumReferences = []string{
	"https://github.com/kubernetes/kubernetes/issues/88986",
	"https://github.com/projectcalico/calico/issues/3145",
	"https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=ea64d8d6c675c0bb712689b13810301de9d8f77a",
}

// udpTunnel reports whether kind wraps packets in UDP, which is what the
// NAT checksum bug corrupts.
func udpTunnel(kind string) bool { return kind == detect.KindVXLAN || kind == detect.KindGeneve }

func featureChange(dev, feature, value string) Change {
	return Change{Kind: ChangeFeature, Target: dev, Setting: feature, Value: value}
}

// offloadEvidence lists the tx features of t, which show whether the
// segmentation offloads went down with the checksum.
func offloadEvidence(t detect.Tunnel) []Evidence {
	ev := []Evidence{{"kind", t.Kind}}
	for _, f := range []string{detect.FeatureTxChecksumGeneric, detect.FeatureTSO, detect.FeatureGSO, detect.FeatureUDPTunnelSeg} {
		if on, ok := t.Features.Has(f); ok {
			ev = append(ev, Evidence{f, detect.OnOff(on)})
		}
	}
	return ev
}

// tunnelChecksum returns the tunnels whose tx checksum state could be read,
// recording in r those whose could not.
func tunnelChecksum(s *detect.Snapshot, rule string, r *Result, want func(t detect.Tunnel, on bool) bool) []detect.Tunnel {
	if s.Tunnels.Err.Failed() {
		r.unchecked(rule, "", s.Tunnels.Err)
		return nil
	}
	var out []detect.Tunnel
	for _, t := range s.Tunnels.Devices {
		if t.Features.Err.Failed() {
			r.unchecked(rule, t.Name, t.Features.Err)
			continue
		}
		on, ok := t.Features.Has(detect.FeatureTxChecksumGeneric)
		if ok && want(t, on) {
			out = append(out, t)
		}
	}
	return out
}

func evalChecksumOff(s *detect.Snapshot, c Config, r *Result) {
	off := tunnelChecksum(s, TunnelTxChecksumOff, r, func(t detect.Tunnel, on bool) bool {
		return !on && !t.Features.IsFixed(detect.FeatureTxChecksumGeneric)
	})
	if len(off) == 0 {
		return
	}
	if s.Kernel.Err.Failed() {
		r.unchecked(TunnelTxChecksumOff, "", s.Kernel.Err)
		return
	}
	fix := s.Kernel.Version.NATChecksumFix()
	if fix == detect.FixMissing {
		return // off is the right state on this kernel
	}
	for _, t := range off {
		if s.PeerOffloadOnBlocked(t.Name) != "" {
			continue // measured slower on: tunnel-offload-hurts says so
		}
		loss, says, source, peerEv := peerChecksumOffLoss(s, t, c)
		change := featureChange(t.Name, detect.FeatureTxChecksumGeneric, "on")
		f := Finding{
			Rule:     TunnelTxChecksumOff,
			Severity: Warning,
			Subject:  t.Name,
			Summary:  fmt.Sprintf("tx checksum offload is off on %s %s; %s", t.Kind, t.Name, says),
			Explanation: "With tx checksum offload off, the kernel computes every inner checksum in software and also drops TSO and " +
				"the other tx segmentation offloads of the device, so large sends are cut into MTU-sized packets before " +
				"encapsulation and each is checksummed by the CPU. " +
				"CNIs switch it off to dodge a kernel bug in NAT of zero UDP checksums, but kernel " + s.Kernel.Release +
				" carries the fix (commit ea64d8d6c675, mainline 5.7, stable 5.6.13, 5.4.41, 4.19.123, 4.14.181). " +
				"What it costs depends on the NIC and the path: " + source + ".",
			Evidence: append(offloadEvidence(t), Evidence{"kernel", s.Kernel.Release}, Evidence{"nat_checksum_fix", string(fix)},
				Evidence{"udp_checksum_evidence", string(s.UDP.ChecksumVerdict())}),
			Impact: Impact{Summary: says, ThroughputLossRatio: loss, Source: source},
			Fix:    Fix{Command: change.Command(), Auto: true, Changes: []Change{change}},
			Owner:  detect.OffloadOwner(s, t.Name),
			References: append([]string{
				"https://github.com/flannel-io/flannel/blob/master/Documentation/troubleshooting.md",
				"https://github.com/projectcalico/calico/issues/9645",
				"https://github.com/projectcalico/calico/issues/11435",
			}, checksumReferences...),
		}
		if fix == detect.FixUnknown {
			f.Fix.Auto = false
			f.Fix.Manual = "this kernel's version does not tell whether it carries commit ea64d8d6c675 (\"netfilter: nat: never update the UDP checksum when it's 0\"): confirm that it does (the distribution's changelog) before turning offload on"
			f.Explanation = "With tx checksum offload off, the kernel computes every inner checksum in software and also drops TSO and " +
				"the other tx segmentation offloads of the device. Whether kernel " + s.Kernel.Release +
				" carries the NAT checksum fix cannot be told from its version: a distribution kernel below the stable " +
				"backports may carry its own backport, and 5.7 release candidates may predate the fix."
		} else if why := s.UDP.OffloadOnBlocked(); why != "" {
			f.Fix.Auto = false
			f.Fix.Manual = why
		} else if why := reportsHoldOffloadOff(s, t); why != "" {
			f.Fix.Auto = false
			f.Fix.Manual = why
			f.Evidence = append(f.Evidence, Evidence{"checksum_reports", why})
		} else if err := s.Peers.Err; err.Failed() {
			// One of the saved measurements may have found offload
			// slower on this very device: could not check, so no auto.
			f.Fix.Auto = false
			f.Fix.Manual = "the saved peer measurements could not be read (" + err.Error() + "), and one may have found offload on " +
				"slower than off on " + t.Name + ": fix or remove the state directory's peer file, or measure again " +
				"(`nodetune bench --peer NODE`), before turning it on"
		}
		f.Evidence = append(f.Evidence, peerEv...)
		if f.Owner != nil && f.Fix.Auto {
			f.Fix.Manual = f.Owner.Name + " will switch it off again; make the change through it: " + f.Owner.DurableFix
		}
		r.add(f)
	}
}

// peerSources are the senders of bad outer checksums to t's port.
func peerSources(s *detect.Snapshot, t detect.Tunnel) []detect.BadChecksumSource {
	var out []detect.BadChecksumSource
	for _, src := range s.UDP.Capture.TunnelSources() {
		if src.Tunnel == t.Name {
			out = append(out, src)
		}
	}
	return out
}

func evalChecksumUnsafe(s *detect.Snapshot, c Config, r *Result) {
	on := tunnelChecksum(s, TunnelTxChecksumUnsafe, r, func(t detect.Tunnel, on bool) bool { return on && udpTunnel(t.Kind) })
	if len(on) == 0 {
		return
	}
	fix := detect.FixUnknown
	if !s.Kernel.Err.Failed() {
		fix = s.Kernel.Version.NATChecksumFix()
	}
	verdict := s.UDP.ChecksumVerdict()
	for _, t := range on {
		peers := peerSources(s, t)
		reported := reportsAbout(s, t, r)
		zero, known := t.SendsZeroChecksum()
		exposed := fix == detect.FixMissing && (zero || !known)
		if len(peers) == 0 && len(reported) == 0 && !exposed {
			if fix == detect.FixUnknown && verdict == detect.AttrUnknown {
				r.unchecked(TunnelTxChecksumUnsafe, t.Name, fmt.Errorf("kernel fix status unknown and UDP checksum errors unreadable: %w", s.UDP.Readable()))
			}
			continue // not exposed, or only evidence about other ports or no one
		}
		change := featureChange(t.Name, detect.FeatureTxChecksumGeneric, "off")
		f := Finding{
			Rule:     TunnelTxChecksumUnsafe,
			Severity: Warning,
			Subject:  t.Name,
			Summary:  fmt.Sprintf("tx checksum offload is on for %s %s, where NAT can corrupt the outer UDP checksum", t.Kind, t.Name),
			Explanation: "When NAT rewrites an encapsulated packet whose UDP checksum is 0 while tx offload is on, kernels without " +
				"commit ea64d8d6c675 emit a wrong outer checksum. The receiver drops the packet and TCP recovers only after SYN " +
				"retransmits: the 63-second delays on NodePort and Service traffic. Kernel " + s.Kernel.Release +
				" lacks the fix and " + t.Name + " sends zero outer checksums, so its packets are exposed.",
			Evidence: append(offloadEvidence(t), Evidence{"kernel", s.Kernel.Release}, Evidence{"nat_checksum_fix", string(fix)},
				outerChecksumEvidence(t)),
			Impact: Impact{Summary: "connections through the tunnel may stall for up to 63 s"},
			Fix:    Fix{Command: change.Command(), Auto: exposed && known, Changes: []Change{change}},
			Owner:  detect.OffloadOwner(s, t.Name),
			References: append([]string{
				"https://github.com/kubernetes/kubernetes/pull/92035",
			}, checksumReferences...),
		}
		if !known {
			f.Explanation = strings.Replace(f.Explanation, " sends zero outer checksums, so its packets are exposed.",
				" may send zero outer checksums (netlink did not say), so its packets may be exposed.", 1)
			f.Fix.Manual = "netlink did not say whether " + t.Name + " sends outer UDP checksums; one that does (udpcsum on IPv4, no udp6zerocsumtx on IPv6) is not exposed: check `ip -d link show " + t.Name + "`"
			if oc := t.OuterChecksum; oc != nil && oc.PerPacket {
				f.Explanation = strings.Replace(f.Explanation, "(netlink did not say)", "(it is an external device: each packet's tunnel key decides)", 1)
				f.Fix.Manual = t.Name + " is an external (collect_md) device: the outer checksum of each packet follows its tunnel key, set by the " +
					"agent that programs it (a BPF program, Open vSwitch), not udpcsum; see whether its packets carry zero checksums " +
					"on the underlay (tcpdump -vv prints \"[no cksum]\" for them)"
			}
		}
		if len(peers) > 0 {
			attributedUnsafe(s, t, peers, fix, &f)
		}
		if len(reported) > 0 {
			reportedUnsafe(s, t, reported, change, &f)
		}
		r.add(f)
	}
}

// attributedUnsafe rewrites f for bad outer checksums that a capture traced
// to t's peers: evidence about the senders, which this node's own offload
// explains only when its kernel lacks the fix.
func attributedUnsafe(s *detect.Snapshot, t detect.Tunnel, peers []detect.BadChecksumSource, fix detect.FixStatus, f *Finding) {
	var n uint64
	for _, p := range peers {
		n += p.Count
	}
	f.Severity = Critical
	f.Summary = fmt.Sprintf("%d tunnel packets with bad outer UDP checksums arrived on %s from %s", n, t.Name, joinPeers(peers))
	f.Impact.Summary = "tunnel packets from those peers are being dropped for bad checksums now"
	f.Evidence = append(f.Evidence, Evidence{"bad_checksum_peers", detect.JoinSources(peers)},
		Evidence{"udp_checksum_evidence", string(detect.AttrTunnel)})
	suspect := "This node's own offload is a suspect only when its kernel lacks the fix, or when its peers report its packets bad; "
	switch fix {
	case detect.FixMissing:
		f.Explanation = "A packet capture traced bad outer checksums to the peers named, so their senders corrupt them now. " +
			suspect + "kernel " + s.Kernel.Release + " lacks commit ea64d8d6c675, so the nodes of this cluster likely share the bug: " +
			"turn offload off here, and on the peers."
		if !f.Fix.Auto && f.Fix.Manual == "" {
			f.Fix.Manual = t.Name + " sends computed outer checksums, which the NAT bug does not corrupt: look at the peers named"
		}
	default:
		// Nothing to change here: the evidence is about the senders.
		f.Fix = Fix{Manual: "the bad packets were sent by the peers named: check their kernels (the NAT checksum fix) and their tunnel offload " +
			"(ethtool -k on their tunnel device), and the NICs and hypervisors between; this node's kernel (NAT checksum fix: " + string(fix) +
			") is not shown to be at fault, so nodetune changes nothing here"}
		f.Explanation = "A packet capture traced bad outer checksums to the peers named: that is evidence about those senders " +
			"(their kernel, their offload, or a NIC or hypervisor on the path), not about this node. " + suspect +
			"kernel " + s.Kernel.Release + "'s fix status is " + string(fix) + "."
	}
}

func joinPeers(peers []detect.BadChecksumSource) string {
	seen := map[string]bool{}
	var out []string
	for _, p := range peers {
		if a := p.Addr.String(); !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return strings.Join(out, ", ")
}

// outerChecksumEvidence says how t fills its outer UDP checksum.
func outerChecksumEvidence(t detect.Tunnel) Evidence {
	zero, known := t.SendsZeroChecksum()
	switch {
	case !known && t.OuterChecksum != nil && t.OuterChecksum.PerPacket:
		return Evidence{"outer_udp_checksum", "per packet"}
	case !known:
		return Evidence{"outer_udp_checksum", "unknown"}
	case zero:
		return Evidence{"outer_udp_checksum", "zero"}
	}
	return Evidence{"outer_udp_checksum", "computed"}
}

func evalCNIOwnsOffload(s *detect.Snapshot, c Config, r *Result) {
	if s.Kernel.Err.Failed() || s.Kernel.Version.NATChecksumFix() != detect.FixPresent {
		return // the owner's choice to keep offload off is right, or cannot be judged
	}
	off := tunnelChecksum(s, CNIOwnsOffload, r, func(t detect.Tunnel, on bool) bool { return !on })
	for _, t := range off {
		owners := detect.OffloadOwners(s, t.Name)
		if len(owners) == 0 {
			continue
		}
		if owners[0].Name == detect.OwnerUnknown {
			r.unchecked(CNIOwnsOffload, t.Name, errors.New(owners[0].Why))
			continue
		}
		r.add(ownsOffloadFinding(s, t, owners))
	}
}

// ownsOffloadFinding is the cni-owns-offload finding for tunnel t, whose
// tx checksum offload the first of owners keeps off.
func ownsOffloadFinding(s *detect.Snapshot, t detect.Tunnel, owners []detect.Owner) Finding {
	owner := detect.OffloadOwner(s, t.Name)
	f := Finding{
		Rule:     CNIOwnsOffload,
		Severity: Warning,
		Subject:  t.Name,
		Impact:   Impact{Summary: "the tunnel's throughput loss cannot be fixed from the node alone"},
		Owner:    owner,
		Fix:      Fix{Command: owners[0].Command},
	}
	for _, o := range owners {
		f.Evidence = append(f.Evidence, Evidence{"owner", o.Name})
		if o.File != "" {
			f.Evidence = append(f.Evidence, Evidence{"owner_file", fmt.Sprintf("%s:%d", o.File, o.Line)})
		}
	}
	f.Evidence = append(f.Evidence, Evidence{"kernel", s.Kernel.Release})
	switch owners[0].Name {
	case detect.OwnerFelix:
		fix := detect.FelixDurableFix(s)
		install, ev := s.Ownership.Calico.Install()
		if install == "" {
			install = "unknown"
		}
		f.Summary = fmt.Sprintf("calico-felix keeps tx checksum offload off on %s and reverts any ethtool change within seconds", t.Name)
		f.Explanation = "Calico's Felix decides at start whether checksum offload is broken (v3.25 to v3.27 always say it is; other " +
			"versions compare the kernel with 5.7) and re-applies that choice about every 10 s. Turning offload on with ethtool " +
			"only starts a fight that Felix wins. The durable fix is to tell Felix the kernel is fixed, for this node."
		f.Evidence = append(f.Evidence, Evidence{"felix_running", fmt.Sprint(s.CNI.FelixRunning)}, Evidence{"calico_install", install})
		for _, e := range ev {
			f.Evidence = append(f.Evidence, Evidence{"calico_install_evidence", e})
		}
		if s.Ownership.NodeName != "" {
			f.Evidence = append(f.Evidence, Evidence{"node_name", s.Ownership.NodeName + " (" + s.Ownership.NodeNameSource + ")"})
		}
		f.Fix.Command = fix.Command
		f.Fix.Manual = strings.Join(fix.Notes, ". ")
		f.References = []string{
			"https://docs.tigera.io/calico/latest/reference/felix/configuration",
			"https://docs.tigera.io/calico/latest/reference/resources/felixconfig",
			"https://github.com/projectcalico/calico/issues/3145",
			"https://github.com/projectcalico/calico/issues/7397",
		}
	default:
		when := "whenever the link is added"
		if owners[0].Name == detect.OwnerNMDispatcher {
			when = "on NetworkManager's events"
		}
		f.Summary = fmt.Sprintf("%s (%s) re-applies tx checksum offload off on %s %s", owners[0].Name, owners[0].File, t.Name, when)
		f.Explanation = "A file on the node sets the offload again each time it runs (when the link appears: at boot, and when " +
			"its agent re-creates it), so an ethtool change lasts only until then: " + owners[0].Why + ". The durable fix is to change that file."
		f.Fix.Manual = owner.DurableFix
		f.References = []string{
			"https://github.com/flannel-io/flannel/blob/master/Documentation/troubleshooting.md",
			"https://www.freedesktop.org/software/systemd/man/latest/systemd.link.html",
			"https://man7.org/linux/man-pages/man7/udev.7.html",
			"https://networkmanager.dev/docs/api/latest/NetworkManager-dispatcher.html",
		}
	}
	return f
}
