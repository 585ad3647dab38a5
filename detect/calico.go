package detect

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Calico install types.
const (
	// CalicoOperator is an install managed by the tigera-operator, which
	// renders calico-node and reverts edits to it.
	CalicoOperator = "operator"
	// CalicoManifest is an install from calico.yaml (or a chart rendered
	// from it), where calico-node's DaemonSet is the user's to edit.
	CalicoManifest = "manifest"
)

// CalicoSign is one thing on the node that tells how Calico was installed.
type CalicoSign struct {
	// Install is CalicoOperator or CalicoManifest.
	Install string `json:"install"`
	// Evidence says what was seen, and where.
	Evidence string `json:"evidence"`
}

// Calico is what the node shows of how Calico was installed and of
// calico-node's environment.
type Calico struct {
	Signs []CalicoSign `json:"signs,omitempty"`
	// Namespace is calico-node's namespace, when the node shows it.
	Namespace string `json:"namespace,omitempty"`
	// EnvOverrideSet reports whether calico-node's environment sets
	// FELIX_FEATUREDETECTOVERRIDE, and EnvOverride to what. Both are
	// known only when EnvErr is zero.
	EnvOverrideSet bool   `json:"env_override_set,omitempty"`
	EnvOverride    string `json:"env_override,omitempty"`
	// EnvErr is why calico-node's environment could not be read (it takes
	// root with CAP_SYS_PTRACE), or that calico-node was not found.
	EnvErr Err `json:"env_error,omitzero"`
}

// Install returns the install type the signs agree on, or "" when there
// are none or they disagree, with the evidence as one line each.
func (c Calico) Install() (string, []string) {
	kind := ""
	var ev []string
	for _, s := range c.Signs {
		ev = append(ev, s.Install+": "+s.Evidence)
		switch kind {
		case "":
			kind = s.Install
		case s.Install:
		default:
			kind = "mixed"
		}
	}
	if kind == "mixed" {
		kind = ""
	}
	return kind, ev
}

// FelixOverrideKey is the featureDetectOverride key that tells Felix
// whether the kernel's checksum offload is broken.
const FelixOverrideKey = "ChecksumOffloadBroken"

// FelixOverride is the featureDetectOverride entry that stops Felix
// switching tunnel tx checksum offload off.
const FelixOverride = FelixOverrideKey + "=false"

// ErrMalformedOverride marks a featureDetectOverride string that Calico's
// API would not accept, so it cannot be merged safely.
var ErrMalformedOverride = errors.New("malformed featureDetectOverride")

// overridePattern is the validation pattern of featureDetectOverride in
// Calico's FelixConfiguration API (projectcalico.org/v3).
var overridePattern = regexp.MustCompile(`^([a-zA-Z0-9-_]+=(true|false|),)*([a-zA-Z0-9-_]+=(true|false|))?$`)

// MergeFeatureDetectOverride returns base, a featureDetectOverride string
// such as "SNATFullyRandom=false,ChecksumOffloadBroken=true", with key set
// to value ("true", "false" or "" for auto-detection) and every other key
// kept in its place. A per-node FelixConfiguration's string replaces the
// global one whole, so a per-node override must carry the global keys.
func MergeFeatureDetectOverride(base, key, value string) (string, error) {
	if !overridePattern.MatchString(key + "=" + value) {
		return "", fmt.Errorf("%w: cannot set %q to %q", ErrMalformedOverride, key, value)
	}
	base = strings.TrimSpace(base)
	if !overridePattern.MatchString(base) {
		return "", fmt.Errorf("%w: %q (want Key=true|false|, entries separated by commas, no spaces)", ErrMalformedOverride, base)
	}
	var out []string
	set := false
	for entry := range strings.SplitSeq(base, ",") {
		if entry == "" {
			continue // a trailing comma, which the API accepts
		}
		k, _, _ := strings.Cut(entry, "=")
		if k == key {
			if set {
				continue // a repeated key: Felix keeps one value
			}
			entry, set = key+"="+value, true
		}
		out = append(out, entry)
	}
	if !set {
		out = append(out, key+"="+value)
	}
	return strings.Join(out, ","), nil
}

// nodeNamePlaceholder stands for the node's name in a command when
// nodetune could not learn it.
const nodeNamePlaceholder = "NODENAME"

// FelixFix is the durable way to stop Felix switching tx checksum offload
// off on this node: a command and what a person needs to know about it.
type FelixFix struct {
	Command string
	Notes   []string
}

// FelixDurableFix works out, from what the node shows, the change that
// makes Felix leave this node's tunnel offload alone: a per-node
// FelixConfiguration (node.<name>), because other nodes may run kernels
// without the fix, unless calico-node's own environment sets the
// override, which wins over every FelixConfiguration.
func FelixDurableFix(s *Snapshot) FelixFix {
	o := s.Ownership
	install, ev := o.Calico.Install()
	ns := o.Calico.Namespace
	if ns == "" {
		switch install {
		case CalicoOperator:
			ns = "calico-system"
		case CalicoManifest:
			ns = "kube-system"
		default:
			ns = "calico-system"
		}
	}
	var fix FelixFix
	switch install {
	case CalicoOperator:
		fix.Notes = append(fix.Notes, "Calico is installed by the tigera-operator ("+strings.Join(ev, "; ")+
			"): the operator reverts edits to calico-node's environment, so the change goes through a FelixConfiguration")
	case CalicoManifest:
		fix.Notes = append(fix.Notes, "Calico is installed from manifests ("+strings.Join(ev, "; ")+
			"): a FelixConfiguration works, and so would FELIX_FEATUREDETECTOVERRIDE on calico-node, but that applies to every node")
	default:
		why := "nothing on the node says"
		if len(ev) > 0 {
			why = "the node's signs disagree: " + strings.Join(ev, "; ")
		}
		fix.Notes = append(fix.Notes, "nodetune cannot tell an operator install from a manifest install ("+why+
			"); the FelixConfiguration route works for both")
	}

	name := nodeNameOr(o)
	obj := "node." + name
	perNode := FelixOverride
	if o.Calico.EnvOverrideSet {
		// The variable wins over every FelixConfiguration, and on this
		// node its keys were in force: carry them into node.<name>, then
		// remove the variable so that the FelixConfigurations count.
		merged, err := MergeFeatureDetectOverride(o.Calico.EnvOverride, FelixOverrideKey, "false")
		if err != nil {
			fix.Notes = append(fix.Notes, "calico-node's FELIX_FEATUREDETECTOVERRIDE cannot be merged ("+err.Error()+"): carry its keys over by hand")
		} else {
			perNode = merged
		}
		fix.Command = ensureFelixConfiguration(obj) + "\n" + patchFelixConfiguration(obj, perNode) + "\n" +
			fmt.Sprintf("kubectl -n %s set env daemonset/calico-node FELIX_FEATUREDETECTOVERRIDE-", shellQuote(ns))
		others := OtherOverrideKeys(o.Calico.EnvOverride, FelixOverrideKey)
		note := fmt.Sprintf("calico-node's environment sets FELIX_FEATUREDETECTOVERRIDE=%s, which wins over every FelixConfiguration, "+
			"so the second line removes it from the DaemonSet (on every node)", o.Calico.EnvOverride)
		if others != "" {
			note += fmt.Sprintf("; before running it, add its other keys (%s) to the default FelixConfiguration's featureDetectOverride, "+
				"merged with what `kubectl get felixconfiguration default -o jsonpath='{.spec.featureDetectOverride}'` prints, or the other nodes lose them", others)
		}
		note += "; other nodes then fall back to Felix's own detection, which keeps offload off on the kernels it considers broken. " +
			fmt.Sprintf("If every node's kernel has the fix, one line does it for all: kubectl -n %s set env daemonset/calico-node %s",
				shellQuote(ns), shellQuote("FELIX_FEATUREDETECTOVERRIDE="+perNode))
		fix.Notes = append(fix.Notes, note)
		if install == CalicoOperator {
			fix.Notes = append(fix.Notes, "The operator may revert edits to calico-node: check that the change stays")
		}
	} else {
		fix.Command = ensureFelixConfiguration(obj) + "\n" + patchFelixConfiguration(obj, perNode)
	}
	if o.NodeName != "" {
		fix.Notes = append(fix.Notes, fmt.Sprintf("Per node: other nodes may run kernels without the fix, so this sets it in %s, "+
			"which applies to this node only and wins over default (node name %s, from %s)", obj, o.NodeName, o.NodeNameSource))
	} else {
		fix.Notes = append(fix.Notes, fmt.Sprintf("Per node: other nodes may run kernels without the fix; replace %s with this node's name "+
			"as Calico knows it (/var/lib/calico/nodename on the node, usually its name in `kubectl get nodes`)", nodeNamePlaceholder))
	}
	if !o.Calico.EnvOverrideSet {
		fix.Notes = append(fix.Notes, fmt.Sprintf("%s's featureDetectOverride replaces default's whole, so carry default's other keys over: "+
			"`kubectl get felixconfiguration default -o jsonpath='{.spec.featureDetectOverride}'`; "+
			"if it prints, say, SNATFullyRandom=false,ChecksumOffloadBroken=true, patch with SNATFullyRandom=false,%s instead "+
			"(and if %s already has its own featureDetectOverride, start from that one)", obj, FelixOverride, obj))
	}
	fix.Notes = append(fix.Notes,
		fmt.Sprintf("The first line creates %s, empty, where it does not exist yet (calico-node does not create it on "+
			"Kubernetes-datastore installs); the patch then goes through the Calico API server where one is installed", obj),
		"Felix restarts itself when featureDetectOverride changes and from then on leaves the device's offload alone, "+
			"but it does not turn it back on: do that once (`ethtool -K DEV tx-checksum-ip-generic on`, or nodetune fix --force)")
	if o.Calico.EnvErr.Failed() {
		fix.Notes = append(fix.Notes, fmt.Sprintf("calico-node's environment could not be read (%s): if it sets FELIX_FEATUREDETECTOVERRIDE "+
			"(MicroK8s's manifest does), that wins over every FelixConfiguration; check with "+
			"`kubectl -n %s get daemonset calico-node -o jsonpath='{.spec.template.spec.containers[0].env}'`",
			o.Calico.EnvErr.Error(), shellQuote(ns)))
	}
	return fix
}

// ensureFelixConfiguration is the shell command that creates the
// FelixConfiguration obj, with no settings, unless it exists. It uses the
// CRD's own group, which every Calico install has.
func ensureFelixConfiguration(obj string) string {
	manifest := `{"apiVersion":"crd.projectcalico.org/v1","kind":"FelixConfiguration","metadata":{"name":"` + obj + `"},"spec":{}}`
	return fmt.Sprintf("kubectl get felixconfiguration %s >/dev/null 2>&1 || echo %s | kubectl create -f -",
		shellQuote(obj), shellQuote(manifest))
}

// patchFelixConfiguration is the kubectl command that sets obj's
// featureDetectOverride, quoted for a POSIX shell.
func patchFelixConfiguration(obj, override string) string {
	return fmt.Sprintf("kubectl patch felixconfiguration %s --type merge -p %s",
		shellQuote(obj), shellQuote(`{"spec":{"featureDetectOverride":"`+override+`"}}`))
}

// OtherOverrideKeys returns the entries of a featureDetectOverride string
// other than key's, comma-separated, or "" when there are none or it is
// malformed.
func OtherOverrideKeys(override, key string) string {
	if !overridePattern.MatchString(strings.TrimSpace(override)) {
		return ""
	}
	var out []string
	for entry := range strings.SplitSeq(strings.TrimSpace(override), ",") {
		if k, _, _ := strings.Cut(entry, "="); entry != "" && k != key {
			out = append(out, entry)
		}
	}
	return strings.Join(out, ",")
}

func nodeNameOr(o Ownership) string {
	if o.NodeName == "" {
		return nodeNamePlaceholder
	}
	return o.NodeName
}
