//go:build !nodetunetest

package tune

// crasherFromEnv is the release build's crash hook: none. An environment
// variable never makes a release nodetune kill itself.
func crasherFromEnv() *crasher { return nil }
