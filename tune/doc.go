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
//
// # Kinds of setting
//
// Each kind of setting (ethtool feature, sysctl, RPS mask, kernel module)
// is one type implementing Kind, in its own file kind_<name>.go. Host
// dispatches reads and writes by looking the kind up in its Kinds; the
// Tuner takes its kinds from its System and asks them how to vet, compare,
// render and roll back a change; the daemon compares values through
// Tuner.Equal. No code outside a kind's file names a kind.
//
// To add a kind (such as an object in the Kubernetes API): write
// kind_<name>.go with a type that implements Kind and carries its own
// dependencies (a client), register it in Host.More where those
// dependencies are built (cmd), and add its fixtures to contracts() in
// kind_test.go, registering it (with a fake client) on the test node's
// Host.More there: TestKindsContract runs the kinds of that Host, and
// fails for one without fixtures, but never sees a kind only cmd
// registers. The Kind interface's comment says what each method must do.
// Its values are strings, the journal records them as they are, and a
// setting is named by a Key (rules.SettingKey), the one identity rules,
// tune and the daemon share.
//
// # Refusals and the journal's claims
//
// A refused change carries a Reason (refusal.go), one stable word that
// the metrics export as a label. Apply makes only the changes of a plan
// that this Tuner's Plan made: Plan consults the journal's holds (what the
// user rolled back) and claims (what nodetune turned off for safety), so a
// caller cannot skip them by planning with Propose, which only previews.
package tune
