package daemon

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBackoffFileSpellsSettingsAsBefore: the back-off file names a counted
// setting with the journal's fields, as it did before the daemon shared
// rules.SettingKey, so an upgraded agent reads its own file.
func TestBackoffFileSpellsSettingsAsBefore(t *testing.T) {
	old := fmt.Sprintf(`{"format": %q, "version": %d, "counted": [
		{"kind": "ethtool-feature", "target": "vxlan.calico", "setting": "tx-checksum-ip-generic", "entry": 7},
		{"kind": "sysctl", "target": "net.core.netdev_max_backlog", "entry": 9}]}`, backoffFormat, backoffVersion)
	c := newConflicts(DefaultBackoff)
	if err := c.unmarshal([]byte(old)); err != nil {
		t.Fatal(err)
	}
	want := map[setting]int64{settingOf(offloadChange): 7, settingOf(backlogKey): 9}
	if diff := cmp.Diff(want, c.counted); diff != "" {
		t.Errorf("counted (-want +got):\n%s", diff)
	}
	data, err := c.marshal()
	if err != nil {
		t.Fatal(err)
	}
	again := newConflicts(DefaultBackoff)
	if err := again.unmarshal(data); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, again.counted); diff != "" {
		t.Errorf("after a round trip (-want +got):\n%s\n%s", diff, data)
	}
}
