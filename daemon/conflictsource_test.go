package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/rules"
)

// conflictingHost is a fakeHost that raises a conflict of its own, as the
// cooperation with Felix does when Felix fights it.
type conflictingHost struct {
	*fakeHost
	raised []rules.Finding
}

func (h conflictingHost) Conflicts() []rules.Finding { return h.raised }

// TestRemediateReportsTheRemediatorsConflicts: a Remediator's own
// remediation-conflict findings are reported each cycle with the
// back-off's.
func TestRemediateReportsTheRemediatorsConflicts(t *testing.T) {
	c := &clock{time.Unix(1e9, 0)}
	h := conflictingHost{fakeHost: newFakeHost(c.now), raised: []rules.Finding{{Rule: rules.RemediationConflict, Subject: "vxlan.calico",
		Owner: &detect.Owner{Name: detect.OwnerFelix}}}}
	h.set(backlogKey, "1000")
	d, _ := newTestDaemon(t, h, c, "")
	got := d.remediate(context.Background(), &detect.Snapshot{}, backlogDrops(h.fakeHost))
	if len(got) != 1 || got[0].Rule != rules.RemediationConflict || got[0].Owner.Name != detect.OwnerFelix {
		t.Errorf("conflicts = %+v; want the Remediator's remediation-conflict naming Felix", got)
	}
}
