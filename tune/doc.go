// Package tune turns findings into changes to the host, and is the only
// package of nodetune that writes to it.
//
// Every change goes through the same steps: it is planned from a snapshot
// (and refused when it is outside the allowlist, when another agent owns the
// setting, or when the kernel or the evidence makes it unsafe), its original
// value is recorded durably in a write-ahead journal, it is written, and it
// is read back; a value the kernel did not take is reverted. Rollback
// restores, newest first, every value nodetune set and still finds at the
// value it set, and leaves alone the ones someone else has changed since.
package tune
