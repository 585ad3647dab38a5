package kube_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodetune/nodetune/kube"
)

// newLease returns a contender for the Lease name in nodetune's namespace,
// as the DaemonSet's service account with the shipped RBAC.
func newLease(t *testing.T, cfg *kube.Config, name, identity string, d time.Duration) *kube.Lease {
	t.Helper()
	c, err := kube.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := kube.NewLease(c, "nodetune", name, identity, d)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLeaseOneMeasures: two contenders race for the same Lease many times
// at once; each round exactly one holds it (the other loses on the
// resourceVersion or on a Lease held and not expired), and the holder
// renews it while the other keeps waiting.
func TestLeaseOneMeasures(t *testing.T) {
	c, token := deployed(t)
	cfg := clientConfig(c, token)
	ctx := context.Background()
	for round := range 5 {
		name := fmt.Sprintf("nodetune-peer-race-%d", round)
		a := newLease(t, cfg, name, "node-a", 30*time.Second)
		b := newLease(t, cfg, name, "node-b", 30*time.Second)
		var wg sync.WaitGroup
		var held atomic.Int32
		var measured []string
		var mu sync.Mutex
		for _, l := range []*kube.Lease{a, b} {
			wg.Go(func() {
				ok, err := l.TryAcquireOrRenew(ctx)
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if ok {
					held.Add(1)
					mu.Lock()
					measured = append(measured, l.Holder())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if held.Load() != 1 {
			t.Fatalf("round %d: %d contenders hold the Lease (%v); want exactly one", round, held.Load(), measured)
		}
		holder, other := a, b
		if !a.Held() {
			holder, other = b, a
		}
		if ok, err := holder.TryAcquireOrRenew(ctx); !ok || err != nil {
			t.Errorf("round %d: the holder cannot renew: %v, %v", round, ok, err)
		}
		if ok, err := other.TryAcquireOrRenew(ctx); ok || err != nil {
			t.Errorf("round %d: the other took a Lease held and not expired: %v, %v", round, ok, err)
		}
		got, err := c.Admin.CoordinationV1().Leases("nodetune").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.HolderIdentity == nil || *got.Spec.HolderIdentity != holder.Holder() ||
			got.Spec.LeaseDurationSeconds == nil || *got.Spec.LeaseDurationSeconds != 30 ||
			got.Spec.RenewTime == nil || got.Spec.AcquireTime == nil {
			t.Errorf("round %d: Lease spec = %+v", round, got.Spec)
		}
	}
}

// TestLeaseExpiryAndRelease: a holder that stops renewing (a node that
// died mid-measurement) keeps the Lease until the other contender has
// seen the same record for the Lease's duration, and then loses it; a
// holder that releases lets the next take it at once.
func TestLeaseExpiryAndRelease(t *testing.T) {
	c, token := deployed(t)
	cfg := clientConfig(c, token)
	ctx := context.Background()
	const name = "nodetune-peer-expiry"
	const d = 2 * time.Second
	a := newLease(t, cfg, name, "node-a", d)
	b := newLease(t, cfg, name, "node-b", d)
	if ok, err := a.TryAcquireOrRenew(ctx); !ok || err != nil {
		t.Fatalf("a: %v, %v", ok, err)
	}
	start := time.Now()
	if ok, err := b.TryAcquireOrRenew(ctx); ok || err != nil {
		t.Fatalf("b took a fresh Lease: %v, %v", ok, err)
	}
	// a is gone: b takes the Lease once it has seen the same record for d.
	var took time.Duration
	for {
		ok, err := b.TryAcquireOrRenew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			took = time.Since(start)
			break
		}
		if time.Since(start) > 10*d {
			t.Fatal("b never took the expired Lease")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took < d {
		t.Errorf("b took the Lease after %s, before it expired (%s)", took, d)
	}
	got, err := c.Admin.CoordinationV1().Leases("nodetune").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.HolderIdentity != "node-b" || got.Spec.LeaseTransitions == nil || *got.Spec.LeaseTransitions != 1 {
		t.Errorf("after expiry: holder %q, transitions %v; want node-b, 1", *got.Spec.HolderIdentity, got.Spec.LeaseTransitions)
	}
	// a comes back: it has not seen b's record for d, so it must wait.
	if ok, err := a.TryAcquireOrRenew(ctx); ok || err != nil {
		t.Fatalf("a took b's Lease: %v, %v", ok, err)
	}
	// b finishes and releases: a takes it at once.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Held() {
		t.Error("b still holds the Lease after releasing it")
	}
	if ok, err := a.TryAcquireOrRenew(ctx); !ok || err != nil {
		t.Fatalf("a cannot take a released Lease: %v, %v", ok, err)
	}
	got, err = c.Admin.CoordinationV1().Leases("nodetune").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.HolderIdentity != "node-a" || *got.Spec.LeaseTransitions != 2 {
		t.Errorf("after release: holder %q, transitions %d; want node-a, 2", *got.Spec.HolderIdentity, *got.Spec.LeaseTransitions)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
