package call

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/media"
)

// Media anchoring. With a relay, every call's audio passes through Veilig:
// each leg gets its own SRTP keys, the device on one leg never sees the
// other's keys or address, and the SDP each device receives names the
// relay. The helpers below keep the B2BUA's offer/answer bookkeeping in one
// place; without a relay (tests of signalling alone) SDP passes through.

// legID is the relay leg a dialog leg maps to.
func (l *leg) legID() media.LegID {
	if l.caller {
		return media.LegA
	}
	return media.LegB
}

// offer turns an offer that the device on leg from sent into the offer for
// the other leg.
func (c *Call) offer(from *leg, body []byte) ([]byte, error) {
	if c.sess == nil || len(body) == 0 {
		return body, nil
	}
	return c.sess.RewriteOffer(from.legID(), body)
}

// answer turns the answer the device on leg from sent into the answer for
// the offering side. An answer already applied (early media, then the
// same SDP in the 200) is not applied twice.
func (c *Call) answer(from *leg, body []byte) ([]byte, error) {
	if c.sess == nil || len(body) == 0 {
		return body, nil
	}
	if c.lastAnswerIn != nil && bytes.Equal(c.lastAnswerIn, body) {
		return c.lastAnswerOut, nil
	}
	out, err := c.sess.RewriteAnswer(from.legID(), body)
	if err != nil {
		if c.lastAnswerOut != nil && errors.Is(err, media.ErrNotAcceptable) && !c.answeredMedia {
			// A second answer to the same offer (a 200 after a 183
			// with other SDP): the first one set up the media.
			return c.lastAnswerOut, nil
		}
		return nil, err
	}
	c.lastAnswerIn, c.lastAnswerOut = append([]byte(nil), body...), out
	return out, nil
}

// resetAnswer starts a new offer/answer round (re-INVITE, UPDATE).
func (c *Call) resetAnswer() { c.lastAnswerIn, c.lastAnswerOut = nil, nil }

// protection describes a leg for the call record.
func protection(s media.LegStats, fallback Media) string {
	switch {
	case s.Suite == "":
		return fallback.Protection()
	case s.Suite == media.SuitePlain:
		return "RTP (plain)"
	}
	return "SRTP " + string(s.Suite)
}

// mediaEvent handles the relay's events for calls this manager owns.
func (m *Manager) mediaEvent(ev media.Event) {
	c := m.callByID(ev.CallID)
	switch ev.Kind {
	case media.EventTimeout:
		m.o.Events.Emit(events.New(events.MediaTimeout, ev.Source, "", "no media for the media timeout; call ended",
			"call_id", ev.CallID))
		if c != nil {
			c.hangup("media timeout")
		}
	case media.EventInjection:
		m.o.Events.Emit(events.New(events.MediaInjection, ev.Source, "",
			fmt.Sprintf("%d unauthenticated or replayed media packets dropped", ev.Count),
			"call_id", ev.CallID, "leg", ev.Leg.String(), "count", fmt.Sprint(ev.Count)))
	}
}
