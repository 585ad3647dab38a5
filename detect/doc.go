// Package detect holds the typed snapshot of a node and the facts derived
// from it: the kernel's version and whether it carries the NAT checksum fix,
// which CNI runs here, and who owns a setting. It does no I/O.
package detect
