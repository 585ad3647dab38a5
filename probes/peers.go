package probes

import (
	"github.com/nodetune/nodetune/detect"
	"github.com/nodetune/nodetune/peerstate"
)

// Peers reads the last peer measurements from h.PeerFile, the file serve's
// peer schedule and bench --peer keep in the state directory. A file that
// does not exist holds none; one that cannot be read records why.
func (h *Host) Peers() detect.Peers {
	ms, err := peerstate.Load(h.PeerFile)
	if err != nil {
		return detect.Peers{Err: detect.Fail(detect.Classify("reading peer measurements", err))}
	}
	return detect.Peers{Measurements: ms}
}
