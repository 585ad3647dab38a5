package testbed

// Internals the external tests use.
var (
	NetnsDir    = netnsDir
	OnThread    = onThread
	DeleteNamed = deleteNamed
)
