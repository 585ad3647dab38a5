package probes

import (
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// TestFilteringNetlinkRemembersUnknownKinds reads the test's own network
// namespace (nothing is changed): a kind the kernel does not know makes it
// dump every link, which FilteringNetlink then skips for UnknownKindTTL.
func TestFilteringNetlinkRemembersUnknownKinds(t *testing.T) {
	f, err := NewNetlink(netns.None())
	if err != nil {
		t.Skipf("no rtnetlink here: %v", err)
	}
	defer f.Close()
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }

	if _, err := f.LinkListByKind("vxlan"); err != nil {
		t.Fatal(err)
	}
	if !f.filters {
		t.Skip("this kernel does not filter link dumps by kind (older than 4.15)")
	}
	const bogus = "nodetune-nokind"
	if links, err := f.LinkListByKind(bogus); err != nil || len(links) != 0 {
		t.Fatalf("LinkListByKind(%q) = %v, %v; want none", bogus, links, err)
	}
	if _, ok := f.absent[bogus]; !ok {
		t.Fatalf("an unknown kind was not remembered as absent: %v", f.absent)
	}
	now = now.Add(UnknownKindTTL - time.Second)
	if _, err := f.LinkListByKind(bogus); err != nil || !f.absent[bogus].Equal(time.Unix(1000, 0)) {
		t.Errorf("within the TTL the kind must not be dumped again: %v, %v", f.absent, err)
	}
	now = now.Add(2 * time.Second)
	if _, err := f.LinkListByKind(bogus); err != nil || !f.absent[bogus].Equal(now) {
		t.Errorf("after the TTL the kind must be asked for again: %v, %v", f.absent, err)
	}
}
