package daemon

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkEvent is one link notification, reduced to what decides whether it
// calls for a new look at the tunnels.
type LinkEvent struct {
	Index int
	Name  string
	// Type is the link type as netlink names it: "vxlan", "geneve",
	// "ipip", "veth", "device"...
	Type string
	// Deleted is true for RTM_DELLINK.
	Deleted bool
}

// Subscriber starts delivering link events on ch until done closes, and
// closes ch when it stops, on done or on error.
type Subscriber func(ch chan<- LinkEvent, done <-chan struct{}, onError func(error)) error

// linkBuffer is the receive buffer asked for the rtnetlink socket; a node
// that creates hundreds of pod veths at once must not overflow it.
const linkBuffer = 1 << 20

// NetlinkSubscriber subscribes to rtnetlink link notifications in the
// network namespace of the calling process. An ethtool feature change
// raises one (RTM_NEWLINK), as does a new, changed or deleted device.
func NetlinkSubscriber(ch chan<- LinkEvent, done <-chan struct{}, onError func(error)) error {
	raw := make(chan netlink.LinkUpdate, 64)
	err := netlink.LinkSubscribeWithOptions(raw, done, netlink.LinkSubscribeOptions{
		ErrorCallback:     onError,
		ReceiveBufferSize: linkBuffer,
	})
	if err != nil {
		close(ch)
		return fmt.Errorf("subscribing to rtnetlink link notifications: %w", err)
	}
	go func() {
		defer close(ch)
		for u := range raw {
			a := u.Link.Attrs()
			ev := LinkEvent{Index: a.Index, Name: a.Name, Type: u.Link.Type(), Deleted: u.Header.Type == unix.RTM_DELLINK}
			select {
			case ch <- ev:
			case <-done:
				for range raw {
					// netlink closes raw once its socket is closed
				}
				return
			}
		}
	}()
	return nil
}
