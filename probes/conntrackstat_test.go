package probes

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodetune/nodetune/detect"
)

// ctStat618 is /proc/net/stat/nf_conntrack of a 6.x kernel: clashres took
// the place of searched.
const ctStat618 = `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000010  00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000004 00000001 00000000  00000000 00000000 00000000 00000000
00000010  00000005 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000001 00000000 00000000  00000000 00000000 00000000 00000000
`

// ctStat414 is the same file from a 4.14 kernel, whose second column
// counts searches.
const ctStat414 = `entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000010  000000ff 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000004 00000001 00000000  00000000 00000000 00000000 00000000
`

func TestParseConntrackStat(t *testing.T) {
	for _, tt := range []struct {
		name  string
		in    string
		want  detect.ConntrackCounters
		clash bool
	}{
		{"6.18", ctStat618, detect.ConntrackCounters{InsertFailed: 3, Drop: 5, EarlyDrop: 1, ClashResolve: 8}, true},
		{"4.14", ctStat414, detect.ConntrackCounters{InsertFailed: 2, Drop: 4, EarlyDrop: 1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, clash, err := ParseConntrackStat(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || clash != tt.clash {
				t.Errorf("clash %v (want %v); (-want +got):\n%s", clash, tt.clash, diff)
			}
		})
	}
	for _, bad := range []string{"", "entries drop\n00000001 00000001\n", ctStat618[:strings.Index(ctStat618, "\n")+1], "entries insert_failed drop early_drop\n1 2\n", "entries insert_failed drop early_drop\n1 2 x 4\n"} {
		if _, _, err := ParseConntrackStat(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseConntrackStat(%q) accepted", bad)
		}
	}
}

func FuzzParseConntrackStat(f *testing.F) {
	f.Add(ctStat618)
	f.Add(ctStat414)
	f.Add("entries insert_failed drop early_drop\n\n1 2 3 4\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, clash, err := ParseConntrackStat(strings.NewReader(in))
		if err != nil && (clash || c != detect.ConntrackCounters{}) {
			t.Fatalf("error %v with counters %+v", err, c)
		}
	})
}
