// Command pause is the sandbox ("pause") process of the test node's pods:
// it holds the pod's namespaces and waits until it is told to stop. The
// test node builds its sandbox image from it, since the usual pause image
// is in a registry the tests do not reach.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
