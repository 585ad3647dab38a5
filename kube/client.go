package kube

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// nodetune talks to two API groups (core/v1 for its Node, events.k8s.io/v1
// for events) through client-go's REST clients, with a scheme that knows
// only the few types of types.go. The generated clientset
// (k8s.io/client-go/kubernetes) would register every API group at
// start-up: measured in nodetune serve, that is 16 MiB more resident
// memory (15.7 -> 31.9 MiB) against 4.5 MiB for the REST clients with
// k8s.io/api's core and events types, in a daemon that runs on every node,
// and in doctor and fix too. Without k8s.io/api the binary is 3 MiB
// smaller again (docs/serve.md, "Footprint").
var clientScheme = runtime.NewScheme()

func init() {
	if err := addKnownTypes(clientScheme); err != nil {
		panic(fmt.Sprintf("kube: registering API types: %v", err))
	}
}

// restClient returns a REST client for one API group version.
func restClient(cfg *rest.Config, gv schema.GroupVersion) (*rest.RESTClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	if gv.Group == "" {
		cfg.APIPath = "/api"
	}
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(clientScheme).WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = "nodetune"
	}
	c, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the client for %s: %w", gv, err)
	}
	return c, nil
}
