package sipedge

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Methods are the SIP methods Veilig serves, in the order an Allow header
// lists them. Every Allow header Veilig sends is cut from this one list, so
// what a device is told matches what the server does.
var Methods = []sip.RequestMethod{sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.REGISTER, sip.OPTIONS, sip.INFO, sip.UPDATE}

// Allow is the Allow header naming Methods less the ones left out (inside a
// dialog REGISTER means nothing, so the call layer leaves it out there).
func Allow(except ...sip.RequestMethod) sip.Header {
	return sip.NewHeader("Allow", allowList(func(m sip.RequestMethod) bool {
		for _, e := range except {
			if e == m {
				return false
			}
		}
		return true
	}))
}

func allowList(keep func(sip.RequestMethod) bool) string {
	var b strings.Builder
	for _, m := range Methods {
		if !keep(m) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(m))
	}
	return b.String()
}
