package detect

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKubeVersion(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want KubeVersion
		ok   bool
	}{
		{"v1.30.4", KubeVersion{1, 30, "v1.30.4"}, true},
		{"v1.29.3-eks-adc7111", KubeVersion{1, 29, "v1.29.3-eks-adc7111"}, true},
		{"1.27", KubeVersion{1, 27, "1.27"}, true},
		{"v1.28+k3s1", KubeVersion{1, 28, "v1.28+k3s1"}, true},
		{"", KubeVersion{}, false},
		{"v1", KubeVersion{}, false},
		{"vx.y", KubeVersion{}, false},
		{"v1.-3", KubeVersion{}, false},
	} {
		got, err := ParseKubeVersion(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseKubeVersion(%q) error %v, want ok=%v", tt.in, err, tt.ok)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseKubeVersion(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestKubeVersionAtLeast(t *testing.T) {
	v := KubeVersion{1, 27, "v1.27.0"}
	if !v.AtLeast(1, 27) || v.AtLeast(1, 28) || !v.AtLeast(0, 99) {
		t.Errorf("AtLeast wrong for %v", v)
	}
	if (KubeVersion{}).AtLeast(0, 0) {
		t.Error("an unknown version is at least something")
	}
}

func FuzzParseKubeVersion(f *testing.F) {
	for _, s := range []string{"v1.30.4", "v1.29.3-eks-adc7111", "", "v1.", "1.2.3.4", "v01.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseKubeVersion(s)
		if err != nil {
			if v.Known() {
				t.Fatalf("error %v with a known version %+v", err, v)
			}
			return
		}
		if !v.Known() || v.Major < 0 || v.Minor < 0 {
			t.Fatalf("ParseKubeVersion(%q) = %+v", s, v)
		}
	})
}
