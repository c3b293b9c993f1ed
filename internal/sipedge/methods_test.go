package sipedge

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestAllowIsCutFromMethods(t *testing.T) {
	if got, want := Allow().Value(), "INVITE, ACK, CANCEL, BYE, REGISTER, OPTIONS, INFO, UPDATE"; got != want {
		t.Fatalf("Allow() = %q, want %q", got, want)
	}
	if got, want := Allow(sip.REGISTER).Value(), "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"; got != want {
		t.Fatalf("Allow(REGISTER) = %q, want %q", got, want)
	}
	m := NewMux()
	m.Handle(sip.REGISTER, HandlerFunc(nil))
	m.Handle(sip.MESSAGE, HandlerFunc(nil)) // not a method Veilig serves
	if got, want := m.allow(), "ACK, CANCEL, REGISTER"; got != want {
		t.Fatalf("mux allow = %q, want %q", got, want)
	}
}
