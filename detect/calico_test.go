package detect

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMergeFeatureDetectOverride(t *testing.T) {
	tests := []struct {
		base, want string
		bad        bool
	}{
		{base: "", want: "ChecksumOffloadBroken=false"},
		{base: "  ", want: "ChecksumOffloadBroken=false"},
		{base: "ChecksumOffloadBroken=true", want: "ChecksumOffloadBroken=false"},
		{base: "SNATFullyRandom=false,ChecksumOffloadBroken=true,RestoreSupportsLock=", want: "SNATFullyRandom=false,ChecksumOffloadBroken=false,RestoreSupportsLock="},
		{base: "SNATFullyRandom=false", want: "SNATFullyRandom=false,ChecksumOffloadBroken=false"},
		{base: "SNATFullyRandom=false,", want: "SNATFullyRandom=false,ChecksumOffloadBroken=false"},
		{base: "ChecksumOffloadBroken=true,ChecksumOffloadBroken=", want: "ChecksumOffloadBroken=false"},
		{base: "checksumoffloadbroken=true", want: "checksumoffloadbroken=true,ChecksumOffloadBroken=false"},
		{base: "SNATFullyRandom=false, ChecksumOffloadBroken=true", bad: true},
		{base: "SNATFullyRandom", bad: true},
		{base: "SNATFullyRandom=maybe", bad: true},
		{base: ",", bad: true},
		{base: "A=true,,B=false", bad: true},
		{base: "A=true;B=false", bad: true},
		{base: "=true", bad: true},
	}
	for _, tt := range tests {
		got, err := MergeFeatureDetectOverride(tt.base, FelixOverrideKey, "false")
		if tt.bad {
			if !errors.Is(err, ErrMalformedOverride) {
				t.Errorf("Merge(%q) = %q, %v; want ErrMalformedOverride", tt.base, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Merge(%q) = %q, %v; want %q", tt.base, got, err, tt.want)
		}
		if !overridePattern.MatchString(got) {
			t.Errorf("Merge(%q) = %q, which Calico's API rejects", tt.base, got)
		}
	}
	if _, err := MergeFeatureDetectOverride("", "Bad Key", "false"); !errors.Is(err, ErrMalformedOverride) {
		t.Errorf("a bad key merged: %v", err)
	}
}

func FuzzMergeFeatureDetectOverride(f *testing.F) {
	for _, s := range []string{"", "ChecksumOffloadBroken=true", "A=true,B=false,", "A=,B", ",,", "A=true, B=false"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		got, err := MergeFeatureDetectOverride(base, FelixOverrideKey, "false")
		if err != nil {
			if !errors.Is(err, ErrMalformedOverride) {
				t.Fatalf("error %v does not wrap ErrMalformedOverride", err)
			}
			return
		}
		if !overridePattern.MatchString(got) || strings.Count(got, FelixOverrideKey+"=") != 1 || !strings.Contains(got, FelixOverride) {
			t.Fatalf("Merge(%q) = %q", base, got)
		}
	})
}

func TestOtherOverrideKeys(t *testing.T) {
	for in, want := range map[string]string{
		"SNATFullyRandom=false,ChecksumOffloadBroken=true": "SNATFullyRandom=false",
		"ChecksumOffloadBroken=true":                       "",
		"A=true,B=":                                        "A=true,B=",
		"not valid":                                        "",
	} {
		if got := OtherOverrideKeys(in, FelixOverrideKey); got != want {
			t.Errorf("OtherOverrideKeys(%q) = %q, want %q", in, got, want)
		}
	}
}

// ensure is the first line of every FelixConfiguration fix for obj.
func ensure(obj string) string {
	return "kubectl get felixconfiguration " + obj + " >/dev/null 2>&1 || echo '{\"apiVersion\":\"crd.projectcalico.org/v1\",\"kind\":\"FelixConfiguration\",\"metadata\":{\"name\":\"" +
		obj + "\"},\"spec\":{}}' | kubectl create -f -\n"
}

func calicoSnapshot(o Ownership) *Snapshot {
	return &Snapshot{
		Tunnels:   Tunnels{Devices: []Tunnel{{Name: "vxlan.calico", Kind: KindVXLAN}}},
		CNI:       CNI{Name: CNICalico, FelixRunning: true},
		Ownership: o,
	}
}

func TestFelixDurableFix(t *testing.T) {
	operator := Calico{Signs: []CalicoSign{{CalicoOperator, "calico-node runs in namespace calico-system"}}, Namespace: "calico-system",
		EnvErr: Fail(ErrPermission)}
	tests := []struct {
		name    string
		o       Ownership
		command string
		notes   []string
	}{
		{
			name:    "operator",
			o:       Ownership{NodeName: "worker-1", NodeNameSource: "Calico's /var/lib/calico/nodename", Calico: operator},
			command: ensure("node.worker-1") + `kubectl patch felixconfiguration node.worker-1 --type merge -p '{"spec":{"featureDetectOverride":"ChecksumOffloadBroken=false"}}'`,
			notes:   []string{"tigera-operator (operator: calico-node runs in namespace calico-system)", "reverts edits", "node.worker-1's featureDetectOverride replaces default's whole", "could not be read"},
		},
		{
			name:    "unknown install, unknown name",
			o:       Ownership{Calico: Calico{EnvErr: Fail(ErrPermission)}},
			command: ensure("node.NODENAME") + `kubectl patch felixconfiguration node.NODENAME --type merge -p '{"spec":{"featureDetectOverride":"ChecksumOffloadBroken=false"}}'`,
			notes:   []string{"cannot tell an operator install from a manifest install (nothing on the node says)", "works for both", "replace NODENAME"},
		},
		{
			name:    "disagreeing signs",
			o:       Ownership{NodeName: "n1", Calico: Calico{Signs: []CalicoSign{{CalicoOperator, "a"}, {CalicoManifest, "b"}}}},
			command: ensure("node.n1") + `kubectl patch felixconfiguration node.n1 --type merge -p '{"spec":{"featureDetectOverride":"ChecksumOffloadBroken=false"}}'`,
			notes:   []string{"signs disagree: operator: a; manifest: b"},
		},
		{
			name: "manifest with the variable set",
			o: Ownership{NodeName: "worker-2", Calico: Calico{Signs: []CalicoSign{{CalicoManifest, "x"}}, Namespace: "kube-system",
				EnvOverrideSet: true, EnvOverride: "SNATFullyRandom=false,ChecksumOffloadBroken=true"}},
			command: ensure("node.worker-2") + `kubectl patch felixconfiguration node.worker-2 --type merge -p '{"spec":{"featureDetectOverride":"SNATFullyRandom=false,ChecksumOffloadBroken=false"}}'` +
				"\nkubectl -n kube-system set env daemonset/calico-node FELIX_FEATUREDETECTOVERRIDE-",
			notes: []string{"wins over every FelixConfiguration", "add its other keys (SNATFullyRandom=false) to the default FelixConfiguration"},
		},
		{
			name: "an odd node name is quoted",
			o:    Ownership{NodeName: "it's", Calico: operator},
			command: `kubectl get felixconfiguration 'node.it'\''s' >/dev/null 2>&1 || echo '{"apiVersion":"crd.projectcalico.org/v1","kind":"FelixConfiguration","metadata":{"name":"node.it'\''s"},"spec":{}}' | kubectl create -f -` + "\n" +
				`kubectl patch felixconfiguration 'node.it'\''s' --type merge -p '{"spec":{"featureDetectOverride":"ChecksumOffloadBroken=false"}}'`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fix := FelixDurableFix(calicoSnapshot(tt.o))
			if diff := cmp.Diff(tt.command, fix.Command); diff != "" {
				t.Errorf("command (-want +got):\n%s", diff)
			}
			all := strings.Join(fix.Notes, "\n")
			for _, n := range tt.notes {
				if !strings.Contains(all, n) {
					t.Errorf("notes lack %q:\n%s", n, all)
				}
			}
		})
	}
}

func TestFelixOwnerNamesThePerNodeFix(t *testing.T) {
	s := calicoSnapshot(Ownership{NodeName: "worker-1", Calico: Calico{Signs: []CalicoSign{{CalicoOperator, "x"}}}})
	o := OffloadOwner(s, "vxlan.calico")
	if o == nil || o.Name != OwnerFelix || !strings.Contains(o.DurableFix, "; kubectl patch felixconfiguration node.worker-1 ") ||
		strings.Contains(o.DurableFix, "set env") {
		t.Errorf("owner = %+v", o)
	}
}

func TestNodeFeatureDetectOverride(t *testing.T) {
	tests := []struct {
		name          string
		global, node  string
		nodeSet       bool
		want          string
		malformedWhat string // the object named in the error, when malformed
	}{
		{name: "nothing set anywhere", want: "ChecksumOffloadBroken=false"},
		{name: "default's keys carried over", global: "SNATFullyRandom=false,ChecksumOffloadBroken=true,MASQFullyRandom=true",
			want: "SNATFullyRandom=false,ChecksumOffloadBroken=false,MASQFullyRandom=true"},
		{name: "node object without the field takes default's", global: "SNATFullyRandom=false", nodeSet: false,
			want: "SNATFullyRandom=false,ChecksumOffloadBroken=false"},
		{name: "node object with an empty string takes default's", global: "SNATFullyRandom=false", node: "", nodeSet: true,
			want: "SNATFullyRandom=false,ChecksumOffloadBroken=false"},
		{name: "node's string is in force and replaces default's", global: "SNATFullyRandom=false,ChecksumOffloadBroken=true",
			node: "RestoreSupportsLock=true,ChecksumOffloadBroken=", nodeSet: true,
			want: "RestoreSupportsLock=true,ChecksumOffloadBroken=false"},
		{name: "already false on the node", node: "ChecksumOffloadBroken=false", nodeSet: true, want: "ChecksumOffloadBroken=false"},
		{name: "malformed default", global: "SNATFullyRandom", malformedWhat: "default"},
		{name: "malformed default under a node string", global: "A=true; B=false", node: "A=true", nodeSet: true, malformedWhat: "default"},
		{name: "malformed node string", global: "A=true", node: "A=yes", nodeSet: true, malformedWhat: "per-node"},
		{name: "spaces in the node string", node: "A=true, B=false", nodeSet: true, malformedWhat: "per-node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NodeFeatureDetectOverride(tt.global, tt.node, tt.nodeSet, FelixOverrideKey, "false")
			if tt.malformedWhat != "" {
				if !errors.Is(err, ErrMalformedOverride) || !strings.Contains(err.Error(), tt.malformedWhat) || got != "" {
					t.Fatalf("got %q, %v; want an ErrMalformedOverride naming the %s object", got, err, tt.malformedWhat)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzNodeFeatureDetectOverride(f *testing.F) {
	f.Add("", "", false)
	f.Add("SNATFullyRandom=false,ChecksumOffloadBroken=true", "A=true,", true)
	f.Add("A=true, B=false", "", true)
	f.Fuzz(func(t *testing.T, global, node string, nodeSet bool) {
		got, err := NodeFeatureDetectOverride(global, node, nodeSet, FelixOverrideKey, "false")
		if err != nil {
			if !errors.Is(err, ErrMalformedOverride) || got != "" {
				t.Fatalf("got %q, %v", got, err)
			}
			return
		}
		if !overridePattern.MatchString(got) || strings.Count(got, FelixOverrideKey+"=") != 1 || !strings.Contains(got, FelixOverride) {
			t.Fatalf("NodeFeatureDetectOverride(%q, %q, %v) = %q", global, node, nodeSet, got)
		}
	})
}
