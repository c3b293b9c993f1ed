package throttle

import (
	"testing"
	"time"
)

func TestOncePerKeyAndWindow(t *testing.T) {
	th := New[string](time.Minute, 0, 10)
	t0 := time.Unix(1000, 0)
	if ok, _ := th.Admit("c", "a", t0); !ok {
		t.Fatal("first occurrence refused")
	}
	for i := 1; i <= 3; i++ {
		if ok, _ := th.Admit("c", "a", t0.Add(time.Duration(i)*time.Second)); ok {
			t.Fatalf("repeat %d within the window admitted", i)
		}
	}
	if ok, _ := th.Admit("c", "b", t0.Add(time.Second)); !ok {
		t.Error("another key was held back by the first")
	}
	ok, sup := th.Admit("c", "a", t0.Add(time.Minute))
	if !ok || sup != 3 {
		t.Errorf("after the window: ok=%v suppressed=%d, want true, 3", ok, sup)
	}
	if th.Suppressed() != 3 {
		t.Errorf("Suppressed() = %d, want 3", th.Suppressed())
	}
}

func TestPerClassCap(t *testing.T) {
	th := New[int](time.Minute, 2, 100)
	t0 := time.Unix(1000, 0)
	admitted := 0
	for k := range 10 {
		if ok, _ := th.Admit("flood", k, t0); ok {
			admitted++
		}
	}
	if admitted != 2 {
		t.Errorf("admitted %d of one class in a window, want 2", admitted)
	}
	if ok, _ := th.Admit("other", 99, t0); !ok {
		t.Error("a different class was capped")
	}
	// A key held back by the class cap reports it when next admitted.
	ok, sup := th.Admit("flood", 5, t0.Add(time.Minute))
	if !ok || sup != 1 {
		t.Errorf("next window: ok=%v suppressed=%d, want true, 1", ok, sup)
	}
}

func TestBoundedKeys(t *testing.T) {
	th := New[int](time.Hour, 0, 3)
	t0 := time.Unix(1000, 0)
	for k := range 4 {
		th.Admit("c", k, t0)
	}
	// Key 0 was forgotten (least recently seen), so it is admitted again.
	if ok, _ := th.Admit("c", 0, t0.Add(time.Second)); !ok {
		t.Error("the oldest key was not forgotten when the throttle was full")
	}
	if ok, _ := th.Admit("c", 3, t0.Add(time.Second)); ok {
		t.Error("a remembered key was admitted within its window")
	}
}

func BenchmarkAdmitKnownRefused(b *testing.B) {
	th := New[string](time.Hour, 0, 1000)
	now := time.Unix(1000, 0)
	th.Admit("c", "k", now)
	b.ReportAllocs()
	for b.Loop() {
		th.Admit("c", "k", now)
	}
}
