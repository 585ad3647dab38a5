# nodetune's build, test and benchmark targets. `make help` lists them.

GO       ?= go
BIN      := bin/nodetune
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 10s
# The container image make image builds (and IMAGE-modules, with modprobe).
IMAGE    ?= ghcr.io/nodetune/nodetune
# Tools the integration tests start (prometheus, promtool, etcd, kube-apiserver)
# are looked up here first; hack/install-deps.sh fills it.
TOOLS    := $(CURDIR)/.cache/bin
export PATH := $(TOOLS):$(PATH)

.PHONY: help build doctor test test-unit deps fuzz bench bench-deps bench-fix lint clean image image-docker manifests

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build the static nodetune binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nodetune

doctor: build ## run nodetune doctor on this host
	./$(BIN) doctor

deps: ## install what the tests need (Debian packages, kube-apiserver); needs root
	./hack/install-deps.sh

test: deps build ## run every test; as root, privileged and integration tests run too
	$(GO) test -count=1 -timeout 20m ./...

test-unit: ## run the tests that need neither root nor external tools
	NODETUNE_PRIVILEGED_TESTS=0 $(GO) test -count=1 -short ./...

fuzz: ## run every fuzz target for FUZZTIME each
	./hack/fuzz.sh $(FUZZTIME)

# node_exporter is built with make build's flags, so that the benchmark
# compares binaries built alike (the stamp records how).
NODE_EXPORTER := v1.12.1 -trimpath -s -w
bench-deps: ## install node_exporter, which make bench measures nodetune against
	[ -x $(TOOLS)/node_exporter ] && [ "$$(cat $(TOOLS)/.node_exporter-build 2>/dev/null)" = "$(NODE_EXPORTER)" ] || \
		{ CGO_ENABLED=0 GOBIN=$(TOOLS) $(GO) install -trimpath -ldflags '-s -w' github.com/prometheus/node_exporter@v1.12.1 && \
		echo "$(NODE_EXPORTER)" >$(TOOLS)/.node_exporter-build; }

bench: build bench-deps ## run the benchmarks and print their figures
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...
	@if [ "$$(id -u)" -eq 0 ]; then ./$(BIN) bench; else echo "nodetune bench skipped: needs root"; fi

bench-fix: ## VXLAN throughput with offload on, off, and after nodetune fix (root, iperf3)
	NODETUNE_BENCH_FIX=1 NODETUNE_PRIVILEGED_TESTS=1 $(GO) test -run '^$$' -bench '^BenchmarkFixRestoresOffload$$' -benchtime 1x -count 1 ./cmd/nodetune/

image: build ## build the images as OCI archives in bin/ with buildah: no Docker, no registry
	./hack/image.sh -m $(BIN) bin $(IMAGE):$(VERSION)

image-docker: ## build the images with a Docker engine (IMAGE:VERSION and IMAGE-modules:VERSION)
	docker build --build-arg VERSION=$(VERSION) --target nodetune -t $(IMAGE):$(VERSION) .
	docker build --build-arg VERSION=$(VERSION) --target modules -t $(IMAGE)-modules:$(VERSION) .

manifests: ## render the kustomize overlays and components into bin/manifests (image tag: IMAGE_TAG, default VERSION)
	IMAGE_TAG="$(or $(IMAGE_TAG),$(VERSION))" ./hack/kube/manifests.sh bin/manifests

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean: ## remove build output
	rm -rf bin
