package detect

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRelease(t *testing.T) {
	tests := []struct {
		in   string
		want Version
	}{
		{"5.4.0-150-generic", Version{5, 4, 0, "-150-generic"}},
		{"4.18.0-553.el8_10.x86_64", Version{4, 18, 0, "-553.el8_10.x86_64"}},
		{"6.1.0-28-cloud-amd64", Version{6, 1, 0, "-28-cloud-amd64"}},
		{"6.18.44-fc-v595", Version{6, 18, 44, "-fc-v595"}},
		{"5.10\n", Version{5, 10, 0, ""}},
		{"5.15.0+", Version{5, 15, 0, "+"}},
		{"4.14.181", Version{4, 14, 181, ""}},
		{"5.4.", Version{5, 4, 0, "."}},
	}
	for _, tt := range tests {
		got, err := ParseRelease(tt.in)
		if err != nil {
			t.Errorf("ParseRelease(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseRelease(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseReleaseRejects(t *testing.T) {
	for _, in := range []string{"", "   ", "linux", "5", "5-generic", ".5.4", "99999999999999999999.1"} {
		if v, err := ParseRelease(in); err == nil {
			t.Errorf("ParseRelease(%q) = %v, want an error", in, v)
		}
	}
}

func TestNATChecksumFix(t *testing.T) {
	tests := []struct {
		release string
		want    FixStatus
	}{
		{"5.7.0", FixPresent},
		{"6.18.44-fc-v595", FixPresent},
		{"6.1.0-28-cloud-amd64", FixPresent},
		{"5.6.12", FixMissing},
		{"5.6.13", FixPresent},
		{"5.4.40", FixMissing},
		{"5.4.41", FixPresent},
		{"4.19.122", FixMissing},
		{"4.19.123", FixPresent},
		{"4.14.180", FixMissing},
		{"4.14.181", FixPresent},
		{"5.5.19", FixMissing},
		{"4.9.337", FixMissing},
		{"5.4.0-custom", FixMissing},
		// Distribution kernels: the patch level hides the upstream one.
		{"5.4.0-150-generic", FixUnknown},
		{"4.18.0-553.el8_10.x86_64", FixUnknown},
		{"4.19.0-27-amd64", FixUnknown},
		// A distribution kernel past the stable backport has it.
		{"5.4.247-162.amzn2.x86_64", FixPresent},
		{"4.14.336-257.562.amzn2.x86_64", FixPresent},
		{"4.19.100-1.el7", FixUnknown},
		// Release candidates of the fix's own release may predate it.
		{"5.7.0-rc1", FixUnknown},
		{"5.7.0-rc7", FixUnknown},
		{"5.8.0-rc1", FixPresent},
		{"5.6.13-rc1", FixPresent},
	}
	for _, tt := range tests {
		v, err := ParseRelease(tt.release)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.NATChecksumFix(); got != tt.want {
			t.Errorf("%s: NATChecksumFix() = %s, want %s", tt.release, got, tt.want)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{"5.4.0-150-generic", "4.18.0-553.el8_10.x86_64", "6.1.0-28-cloud-amd64", "5.10", "", "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRelease(s)
		if err != nil {
			return
		}
		_ = v.NATChecksumFix()
		if v.Major < 0 || v.Minor < 0 || v.Patch < 0 {
			t.Fatalf("negative version from %q: %+v", s, v)
		}
	})
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want error
	}{
		{fs.ErrNotExist, ErrGone},
		{syscall.ENOENT, ErrGone},
		{syscall.ENODEV, ErrGone},
		{syscall.ENXIO, ErrGone},
		{syscall.EROFS, ErrReadOnly},
		{syscall.EOPNOTSUPP, ErrNotSupported},
		{syscall.EPROTONOSUPPORT, ErrNotSupported},
		{syscall.EACCES, ErrPermission},
		{fs.ErrPermission, ErrPermission},
	} {
		got := Classify("reading x", tt.err)
		if !errors.Is(got, tt.want) || !errors.Is(got, tt.err) || !strings.HasPrefix(got.Error(), "reading x: ") {
			t.Errorf("Classify(%v) = %v, want it to wrap %v and %v", tt.err, got, tt.want, tt.err)
		}
		// Each failure has one kind: a missing device or a read-only
		// mount is not "not supported".
		for _, other := range []error{ErrGone, ErrReadOnly, ErrNotSupported, ErrPermission} {
			if other != tt.want && errors.Is(got, other) {
				t.Errorf("Classify(%v) = %q is also %q", tt.err, got, other)
			}
		}
	}
	if !Unavailable(Classify("x", syscall.ENODEV)) || !Unavailable(Classify("x", syscall.EOPNOTSUPP)) || Unavailable(Classify("x", syscall.EROFS)) {
		t.Error("Unavailable: want true for gone and not supported, false for read-only")
	}
	if got := Classify("x", syscall.EIO); errors.Is(got, ErrNotSupported) || errors.Is(got, ErrPermission) {
		t.Errorf("EIO classified as %v", got)
	}
	if Classify("x", nil) != nil {
		t.Error("Classify(nil) is not nil")
	}
}
