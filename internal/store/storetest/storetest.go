// Package storetest is the conformance suite every store.Store backend must
// pass, in the manner of testing/slogtest: a backend's own test calls Run
// with a constructor, and the suite checks the contract written in package
// store (sentinel errors, upsert and expiry, cascades, ordering, filters,
// Version, cancellation, concurrent use). Times used here are rounded to
// milliseconds so that backends with coarser clocks than Go's still pass.
package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// Run runs the suite. open must return a new, empty store on every call;
// Run closes it when the subtest ends and fails if Close does.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ExtensionCreateGet", testExtensionCreateGet},
		{"ExtensionCreateDefaultsTimes", testExtensionCreateDefaultsTimes},
		{"ExtensionCreateInvalid", testExtensionCreateInvalid},
		{"ExtensionUpdate", testExtensionUpdate},
		{"ExtensionList", testExtensionList},
		{"ExtensionDelete", testExtensionDelete},
		{"Changes", testChanges},
		{"BindingUpsert", testBindingUpsert},
		{"BindingFields", testBindingFields},
		{"BindingExpiry", testBindingExpiry},
		{"BindingUnknownExtension", testBindingUnknownExtension},
		{"BindingDelete", testBindingDelete},
		{"CallRecords", testCallRecords},
		{"CallRecordsDuplicate", testCallRecordsDuplicate},
		{"Events", testEvents},
		{"EventFilters", testEventFilters},
		{"EventFilterMore", testEventFilterMore},
		{"EventUIDIdempotent", testEventUIDIdempotent},
		{"CallRecordFilters", testCallRecordFilters},
		{"EmptyBatches", testEmptyBatches},
		{"Bans", testBans},
		{"Locks", testLocks},
		{"Suspensions", testSuspensions},
		{"Trunks", testTrunks},
		{"Audit", testAudit},
		{"Update", testUpdate},
		{"Purge", testPurge},
		{"GuardSave", testGuardSave},
		{"NetBans", testNetBans},
		{"Canceled", testCanceled},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// now is the current time at the precision the suite relies on.
func now() time.Time { return time.Now().Truncate(time.Millisecond) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want one matching %v", what, err, target)
	}
}

func ext(number string, at time.Time) store.Extension {
	return store.Extension{
		Number:    number,
		Name:      "Ext " + number,
		Realm:     "veilig.test",
		HA1MD5:    []byte("sealed-md5-" + number),
		HA1SHA256: []byte("sealed-sha256-" + number),
		CreatedAt: at,
		UpdatedAt: at,
	}
}

func createExt(t *testing.T, s store.Store, numbers ...string) {
	t.Helper()
	for _, n := range numbers {
		must(t, s.CreateExtension(t.Context(), ext(n, now())))
	}
}

func version(t *testing.T, s store.Store) int64 {
	t.Helper()
	v, err := s.LastChange(t.Context())
	must(t, err)
	return v
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
