package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodetune/nodetune/internal/privtest"
	"github.com/nodetune/nodetune/kube/kubetest"
)

// The images the tests run are built the way `make image` builds them:
// the static binary, then hack/image.sh (buildah, no registry) writes OCI
// archives. They are built once per test binary, under a reference of
// their own so that the container stores they are loaded into never mix
// them up with a released image.

var (
	imageOnce sync.Once
	imageDir  string
	imageErr  error
)

// testImage is the reference the test images carry.
var testImage = fmt.Sprintf("localhost/nodetune-test:%d", os.Getpid())

// testModulesImage is the modules variant's reference, which hack/image.sh
// makes NAME-modules:TAG.
var testModulesImage = strings.Replace(testImage, ":", "-modules:", 1)

// images are the OCI archives of both variants.
type images struct {
	Nodetune, Modules string
}

// buildImages builds the static binary and both images once, or skips t
// where the tools are missing (failing under CI=true).
func buildImages(t *testing.T) images {
	t.Helper()
	privtest.Root(t)
	privtest.Tool(t, "buildah")
	privtest.Tool(t, "kmod")
	imageOnce.Do(func() {
		root, err := kubetest.RepoRoot()
		if err != nil {
			imageErr = err
			return
		}
		dir, err := os.MkdirTemp("", "nodetune-deploy-images-")
		if err != nil {
			imageErr = err
			return
		}
		imageDir = dir
		bin := filepath.Join(dir, "nodetune")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/nodetune")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		img := exec.Command(filepath.Join(root, "hack/image.sh"), "-m", bin, dir, testImage)
		if out, err := img.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("hack/image.sh: %w\n%s", err, out)
			return
		}
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return images{
		Nodetune: filepath.Join(imageDir, "nodetune.oci.tar"),
		Modules:  filepath.Join(imageDir, "nodetune-modules.oci.tar"),
	}
}

// removeImages removes what buildImages built; TestMain calls it.
func removeImages() {
	if imageDir != "" {
		os.RemoveAll(imageDir)
	}
}

// imageFor is the test image that stands for the image a rendered
// DaemonSet names: the modules variant for a -modules image.
func imageFor(c corev1.Container) string {
	if regexp.MustCompile(`-modules:[^/]*$`).MatchString(c.Image) {
		return testModulesImage
	}
	return testImage
}

// envRef is a $(VAR) reference in a container's arguments.
var envRef = regexp.MustCompile(`\$\([A-Za-z_][A-Za-z0-9_]*\)`)

// expandArgs expands $(VAR) references in c's arguments from env, as the
// kubelet does.
func expandArgs(c corev1.Container, env map[string]string) []string {
	var args []string
	for _, a := range c.Args {
		args = append(args, envRef.ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		}))
	}
	return args
}

// containerEnv is c's environment, with its downward API fields taken
// from downward.
func containerEnv(t *testing.T, c corev1.Container, downward map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			v, ok := downward[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("env %s: the test has no value for field %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			t.Fatalf("env %s: only values and downward API fields are supported", e.Name)
		}
	}
	return env
}
