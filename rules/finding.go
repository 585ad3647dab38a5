// Package rules is nodetune's catalog of judgements. A rule is a pure
// function of a snapshot: no clock, no I/O, no logging.
package rules

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/internal/shell"
)

// Severity orders findings from informational to critical.
type Severity int

// Severities, in increasing order.
const (
	Info Severity = iota
	Warning
	Critical
)

var severityNames = []string{"info", "warning", "critical"}

// String returns the lowercase name users alert on.
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity is the inverse of String.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if n == s {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q", s)
}

// MarshalJSON writes the severity by name.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a severity written by MarshalJSON.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	v, err := ParseSeverity(name)
	*s = v
	return err
}

// Finding is one cause of lost network performance on the node.
type Finding struct {
	// Rule is the stable kebab-case ID of the rule that fired.
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: a device, a CPU, "conntrack".
	Subject string `json:"subject"`
	// Summary is one line for a person.
	Summary string `json:"summary"`
	// Explanation is a paragraph on why this costs performance.
	Explanation string     `json:"explanation"`
	Evidence    []Evidence `json:"evidence"`
	Impact      Impact     `json:"impact"`
	Fix         Fix        `json:"fix"`
	// Owner is the agent that will undo a change to this setting, if any.
	Owner      *detect.Owner `json:"owner,omitempty"`
	References []string      `json:"references"`
}

// Evidence is one measured value behind a finding.
type Evidence struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Impact says what the finding costs.
type Impact struct {
	Summary string `json:"summary"`
	// ThroughputLossRatio is the estimated share of throughput lost, in
	// [0,1], for findings that cost throughput; 0 otherwise.
	ThroughputLossRatio float64 `json:"throughput_loss_ratio,omitempty"`
	// Source says where the estimate comes from.
	Source string `json:"source,omitempty"`
}

// Fix is the remedy: the exact commands, and whether nodetune may apply
// them by itself.
type Fix struct {
	// Command is what a person would run, one command per line.
	Command string `json:"command"`
	// Auto reports whether `nodetune fix` applies Changes on its own.
	Auto bool `json:"auto"`
	// Manual explains why the fix is not automatic, when it is not.
	Manual string `json:"manual,omitempty"`
	// Changes are the typed writes behind Command, for the tune package.
	Changes []Change `json:"changes,omitempty"`
}

// Change kinds.
const (
	ChangeFeature = "ethtool-feature"
	ChangeSysctl  = "sysctl"
	ChangeRPS     = "rps-cpus"
	ChangeModule  = "kernel-module"
	// ChangeFelixConfiguration is this node's own FelixConfiguration
	// (node.<name>), whose spec nodetune sets through the Kubernetes API
	// with --calico.cooperate.
	ChangeFelixConfiguration = "calico-felix-configuration"
)

// SettingKey is the identity of one setting nodetune may change, the one
// spelling shared by rules (Change.Key), tune (its Key, the journal's
// "kind"/"target"/"setting" fields) and the daemon (what it holds and
// counts).
type SettingKey struct {
	// Kind names the kind of setting: ChangeFeature, ChangeSysctl,
	// ChangeRPS, ChangeModule, or a kind tune registers later.
	Kind string `json:"kind"`
	// Target is a device, a sysctl key, "DEV/rx-N" for RPS, or a module.
	Target string `json:"target"`
	// Setting is the ethtool feature, for feature changes.
	Setting string `json:"setting,omitempty"`
}

// String names the key the way a person would, escaped for a terminal: a
// device name may hold control characters or bytes that are not UTF-8.
func (k SettingKey) String() string {
	if k.Setting != "" {
		return shell.Escape(k.Target) + " " + shell.Escape(k.Setting)
	}
	return shell.Escape(k.Target)
}

// Change is one write to the host that a fix is made of.
type Change struct {
	Kind string `json:"kind"`
	// Target is a device, a sysctl key, "DEV/rx-N" for RPS, or a module.
	Target string `json:"target"`
	// Setting is the ethtool feature, for feature changes.
	Setting string `json:"setting,omitempty"`
	// Value is the value to write: "on"/"off", a number, a hex mask.
	Value string `json:"value"`
}

// Key is the identity of the setting c writes.
func (c Change) Key() SettingKey {
	return SettingKey{Kind: c.Kind, Target: c.Target, Setting: c.Setting}
}

// Command renders the change as the shell command a person would type,
// every argument quoted for a POSIX shell and safe on a terminal: a device
// may be named `x$(id)`, and pasting the command must not run that.
func (c Change) Command() string {
	if render, ok := commandOf[c.Kind]; ok {
		return render(c)
	}
	return fmt.Sprintf("# unknown change %s on %s", shell.Escape(c.Kind), shell.Escape(c.Target))
}

// commandOf renders a change of each host kind as a shell command. A kind
// whose rule writes its Fix.Command itself needs no entry.
var commandOf = map[string]func(Change) string{
	ChangeFeature: func(c Change) string { return shell.Join("ethtool", "-K", c.Target, c.Setting, c.Value) },
	ChangeSysctl:  func(c Change) string { return shell.Join("sysctl", "-w", c.Target+"="+c.Value) },
	ChangeRPS: func(c Change) string {
		dev, queue, _ := strings.Cut(c.Target, "/")
		return shell.Join("echo", c.Value) + " > " + shell.Quote("/sys/class/net/"+dev+"/queues/"+queue+"/rps_cpus")
	},
	ChangeModule: func(c Change) string { return shell.Join("modprobe", c.Target) },
}

// commands joins the commands of changes, one per line.
func commands(changes []Change) string {
	lines := make([]string, len(changes))
	for i, c := range changes {
		lines[i] = c.Command()
	}
	return strings.Join(lines, "\n")
}

// Unchecked records a rule that could not evaluate, and why.
type Unchecked struct {
	Rule    string `json:"rule"`
	Subject string `json:"subject,omitempty"`
	Reason  string `json:"reason"`
}
