// Package bench measures what encapsulation and tunnel offloads cost on
// this node's own kernel, without touching the node's devices.
//
// Run builds a throwaway testbed (two network namespaces joined by a veth
// pair, a tunnel of the node's kind on top), and measures TCP throughput
// from one side to the other in-process: over the underlay alone, through
// the tunnel with tx checksum offload on, with it off, and optionally with
// the node's own tunnel feature set copied onto the throwaway device. It
// removes the testbed afterwards, also when the context is cancelled.
package bench
