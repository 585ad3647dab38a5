package rules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
)

// PublishedChecksumOffLoss is the share of VXLAN throughput lost with tx
// checksum offload off, measured with iperf3 between two namespaces on
// kernel 6.18 (30.5 Gbit/s on, 6.9 Gbit/s off).
const PublishedChecksumOffLoss = 0.77

const publishedLossSource = "published: iperf3 over VXLAN between two namespaces on kernel 6.18, 30.5 Gbit/s with offload, 6.9 Gbit/s without"

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
	loss, source := PublishedChecksumOffLoss, publishedLossSource
	if c.MeasuredLoss > 0 {
		loss, source = c.MeasuredLoss, "measured on this node by nodetune bench"
	}
	for _, t := range off {
		change := featureChange(t.Name, detect.FeatureTxChecksumGeneric, "on")
		f := Finding{
			Rule:     TunnelTxChecksumOff,
			Severity: Warning,
			Subject:  t.Name,
			Summary:  fmt.Sprintf("tx checksum offload is off on %s %s; the tunnel loses about %.0f%% of its throughput", t.Kind, t.Name, loss*100),
			Explanation: "With tx checksum offload off, the kernel computes every inner checksum in software and also drops TSO and " +
				"the other tx segmentation offloads of the device, so large sends are cut into MTU-sized packets before " +
				"encapsulation and each is checksummed by the CPU. " +
				"CNIs switch it off to dodge a kernel bug in NAT of zero UDP checksums, but kernel " + s.Kernel.Release +
				" carries the fix (commit ea64d8d6c675, mainline 5.7, stable 5.6.13, 5.4.41, 4.19.123, 4.14.181).",
			Evidence: append(offloadEvidence(t), Evidence{"kernel", s.Kernel.Release}, Evidence{"nat_checksum_fix", string(fix)}),
			Impact:   Impact{Summary: fmt.Sprintf("about %.0f%% of tunnel throughput", loss*100), ThroughputLossRatio: loss, Source: source},
			Fix:      Fix{Command: change.Command(), Auto: true, Changes: []Change{change}},
			Owner:    detect.OffloadOwner(s, t.Name),
			References: append([]string{
				"https://github.com/flannel-io/flannel/blob/master/Documentation/troubleshooting.md",
			}, checksumReferences...),
		}
		switch {
		case fix == detect.FixUnknown:
			f.Fix.Auto = false
			f.Fix.Manual = "this kernel's version does not tell whether it carries commit ea64d8d6c675 (\"netfilter: nat: never update the UDP checksum when it's 0\"): confirm that it does (the distribution's changelog) before turning offload on"
			f.Explanation = "With tx checksum offload off, the kernel computes every inner checksum in software and also drops TSO and " +
				"the other tx segmentation offloads of the device. Whether kernel " + s.Kernel.Release +
				" carries the NAT checksum fix cannot be told from its version: a distribution kernel below the stable " +
				"backports may carry its own backport, and 5.7 release candidates may predate the fix."
		case s.UDP.Err.Failed():
			f.Fix.Auto = false
			f.Fix.Manual = "UDP checksum error counters could not be read, so nodetune cannot confirm that the bug is absent: " + s.UDP.Err.Error()
		case s.UDP.Delta > 0:
			f.Fix.Auto = false
			f.Fix.Manual = fmt.Sprintf("%d UDP packets with bad checksums arrived during the window; find their source before turning offload on", s.UDP.Delta)
		}
		if f.Owner != nil && f.Fix.Auto {
			f.Fix.Manual = f.Owner.Name + " will switch it off again; make the change through it: " + f.Owner.DurableFix
		}
		r.add(f)
	}
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
	rising := !s.UDP.Err.Failed() && s.UDP.Delta > 0
	if !rising && fix != detect.FixMissing {
		if fix == detect.FixUnknown && s.UDP.Err.Failed() {
			for _, t := range on {
				r.unchecked(TunnelTxChecksumUnsafe, t.Name, fmt.Errorf("kernel fix status unknown and UDP checksum errors unreadable: %w", s.UDP.Err))
			}
		}
		return
	}
	for _, t := range on {
		change := featureChange(t.Name, detect.FeatureTxChecksumGeneric, "off")
		f := Finding{
			Rule:     TunnelTxChecksumUnsafe,
			Severity: Warning,
			Subject:  t.Name,
			Summary:  fmt.Sprintf("tx checksum offload is on for %s %s, where NAT can corrupt the outer UDP checksum", t.Kind, t.Name),
			Explanation: "When NAT rewrites an encapsulated packet whose UDP checksum is 0 while tx offload is on, kernels without " +
				"commit ea64d8d6c675 emit a wrong outer checksum. The receiver drops the packet and TCP recovers only after SYN " +
				"retransmits: the 63-second delays on NodePort and Service traffic.",
			Evidence: append(offloadEvidence(t), Evidence{"kernel", s.Kernel.Release}, Evidence{"nat_checksum_fix", string(fix)}),
			Impact:   Impact{Summary: "connections through the tunnel may stall for up to 63 s"},
			Fix:      Fix{Command: change.Command(), Auto: true, Changes: []Change{change}},
			Owner:    detect.OffloadOwner(s, t.Name),
			References: append([]string{
				"https://github.com/kubernetes/kubernetes/pull/92035",
			}, checksumReferences...),
		}
		if rising {
			f.Severity = Critical
			f.Summary = fmt.Sprintf("%d UDP packets with bad checksums arrived in %s while tx checksum offload is on for %s", s.UDP.Delta, s.Window, t.Name)
			f.Evidence = append(f.Evidence, Evidence{"udp_in_csum_errors_delta", fmt.Sprint(s.UDP.Delta)})
			f.Impact.Summary = "packets are being dropped for bad checksums now"
		}
		r.add(f)
	}
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
