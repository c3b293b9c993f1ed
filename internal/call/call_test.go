package call

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/media"
)

const (
	keyA = "KKI8ly2hE+fvyPMaLU93cPhzlxM8dg8yjeiOLKDA"
	keyB = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
)

// TestForkFirstAnswerWins: the INVITE goes to every device; the first 2xx
// is relayed with its SDP and ACKed, the other forks are cancelled, and a
// 2xx that crosses the CANCEL is acknowledged and hung up at once.
func TestForkFirstAnswerWins(t *testing.T) {
	b := newBench(t, 3, nil)
	tx := b.invite(offerSDP("127.0.0.10", keyA))
	for i := range 3 {
		if got := b.forkTo(i).req.Body(); string(got) != string(offerSDP("127.0.0.10", keyA)) {
			t.Fatalf("device %d got offer %q", i, got)
		}
	}
	b.answer(b.forkTo(1), 180, nil)
	b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))

	if fin := tx.final(); fin == nil || fin.StatusCode != 200 || string(fin.Body()) != string(offerSDP("127.0.0.20", keyB)) {
		t.Fatalf("caller's final answer = %v, want 200 with the device's SDP", fin)
	}
	if got := tx.codes(); !slices.Equal(got, []int{100, 180, 200}) {
		t.Fatalf("caller got %v, want 100 180 200", got)
	}
	if len(b.e.acksTo(b.devices[0])) != 1 {
		t.Fatal("the winning 2xx was not ACKed")
	}
	if b.forkTo(0).tx.wasCancelled() || !b.forkTo(1).tx.wasCancelled() || !b.forkTo(2).tx.wasCancelled() {
		t.Fatal("want the losing forks cancelled and the winner not")
	}
	// Device 2 answered before its CANCEL arrived.
	b.answer(b.forkTo(2), 200, offerSDP("127.0.0.22", keyB))
	if len(b.e.acksTo(b.devices[2])) != 1 || len(b.e.sentTo(b.devices[2], sip.BYE)) != 1 {
		t.Fatal("a late 2xx must be ACKed and hung up")
	}
	if fin := tx.final(); fin.StatusCode != 200 {
		t.Fatal("the late answer changed the caller's answer")
	}
	tx.ack(t, nil)
	if calls, dialogs := b.m.Active(); calls != 1 || dialogs != 2 {
		t.Fatalf("Active = %d calls, %d dialogs; want 1, 2", calls, dialogs)
	}
	// A retransmitted 2xx from the winner gets the same ACK again.
	b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
	if b.devices[0].Sent() != 1 {
		t.Fatalf("retransmitted 2xx: %d ACK resends, want 1", b.devices[0].Sent())
	}
}

// TestCallerCancels: a CANCEL while ringing cancels every fork and answers
// the caller 487.
func TestCallerCancels(t *testing.T) {
	b := newBench(t, 2, nil)
	tx := b.invite(offerSDP("127.0.0.10", keyA))
	b.answer(b.forkTo(0), 180, nil)
	tx.cancel()
	if fin := tx.final(); fin == nil || fin.StatusCode != 487 {
		t.Fatalf("caller's final = %v, want 487", fin)
	}
	for i := range 2 {
		if !b.forkTo(i).tx.wasCancelled() {
			t.Fatalf("fork %d not cancelled", i)
		}
	}
	if rec := b.ended(); rec.Disposition != "cancelled" {
		t.Fatalf("record disposition %q, want cancelled", rec.Disposition)
	}
	b.idle()
}

// TestCancelCrosses200: the device's 200 and the caller's CANCEL cross.
func TestCancelCrosses200(t *testing.T) {
	t.Run("200 first", func(t *testing.T) {
		// The call is answered: the late CANCEL changes nothing (RFC 3261
		// 9.2: a CANCEL after the final response has no effect).
		b := newBench(t, 1, nil)
		tx := b.invite(offerSDP("127.0.0.10", keyA))
		b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
		tx.cancel()
		if got := tx.codes(); !slices.Equal(got, []int{100, 200}) {
			t.Fatalf("caller got %v, want 100 200", got)
		}
		if len(b.e.sentTo(b.devices[0], sip.BYE)) != 0 {
			t.Fatal("answered call hung up by a late CANCEL")
		}
		tx.ack(t, nil)
		if calls, _ := b.m.Active(); calls != 1 {
			t.Fatal("call gone after a late CANCEL")
		}
	})
	t.Run("CANCEL first", func(t *testing.T) {
		// The caller got 487; the device's 200 that crossed our CANCEL is
		// acknowledged and hung up, and nothing is left behind.
		b := newBench(t, 1, nil)
		tx := b.invite(offerSDP("127.0.0.10", keyA))
		tx.cancel()
		b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
		if got := tx.codes(); !slices.Equal(got, []int{100, 487}) {
			t.Fatalf("caller got %v, want 100 487", got)
		}
		if len(b.e.acksTo(b.devices[0])) != 1 || len(b.e.sentTo(b.devices[0], sip.BYE)) != 1 {
			t.Fatal("the crossing 200 must be ACKed and hung up")
		}
		b.ended()
		b.idle()
	})
}

// TestFailurePropagation: when every device refuses, the caller gets the
// best answer (6xx first, then busy, then 488/480), never a raw 5xx.
func TestFailurePropagation(t *testing.T) {
	tests := []struct {
		name  string
		codes []int
		want  int
		disp  string
	}{
		{"busy", []int{486}, 486, "busy"},
		{"decline", []int{603}, 603, "declined"},
		{"6xx beats busy", []int{486, 600}, 600, "busy"},
		{"busy beats unavailable", []int{480, 486}, 486, "busy"},
		{"not acceptable", []int{488}, 488, "failed"},
		{"server error becomes unavailable", []int{500}, 480, "unavailable"},
		{"not found becomes unavailable", []int{404, 503}, 480, "unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t, len(tc.codes), nil)
			tx := b.invite(offerSDP("127.0.0.10", keyA))
			for i, code := range tc.codes {
				if fin := tx.final(); fin != nil {
					t.Fatalf("caller answered %d before device %d answered", fin.StatusCode, i)
				}
				b.answer(b.forkTo(i), code, nil)
			}
			if fin := tx.final(); fin == nil || fin.StatusCode != tc.want {
				t.Fatalf("caller's final = %v, want %d", fin, tc.want)
			}
			if rec := b.ended(); rec.Disposition != tc.disp {
				t.Fatalf("disposition %q, want %q", rec.Disposition, tc.disp)
			}
			b.idle()
		})
	}
}

// TestNoDeviceReachable: a send that fails on every fork answers 480.
func TestNoDeviceReachable(t *testing.T) {
	b := newBench(t, 2, nil)
	b.e.fail[b.devices[0]], b.e.fail[b.devices[1]] = true, true
	tx := b.invite(offerSDP("127.0.0.10", keyA))
	if fin := tx.final(); fin == nil || fin.StatusCode != 480 {
		t.Fatalf("caller's final = %v, want 480", fin)
	}
	b.idle()
}

// established sets up a confirmed call with an early offer.
func established(t *testing.T, tune func(*Options)) (*bench, *fakeServerTx) {
	t.Helper()
	b := newBench(t, 1, tune)
	tx := b.invite(offerSDP("127.0.0.10", keyA))
	b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
	tx.ack(t, nil)
	return b, tx
}

// TestBye: a BYE from either side is answered and passed to the other leg.
func TestBye(t *testing.T) {
	t.Run("from caller", func(t *testing.T) {
		b, _ := established(t, nil)
		bye := b.fromCaller(sip.BYE, 2, nil)
		if fin := bye.final(); fin == nil || fin.StatusCode != 200 {
			t.Fatalf("BYE answered %v", fin)
		}
		if len(b.e.sentTo(b.devices[0], sip.BYE)) != 1 || len(b.e.sentTo(b.caller, sip.BYE)) != 0 {
			t.Fatal("want one BYE to the callee and none back to the caller")
		}
		if rec := b.ended(); rec.Disposition != "answered" || rec.Cause != "caller hung up" || rec.AnsweredAt.IsZero() {
			t.Fatalf("record %+v", rec)
		}
		b.idle()
	})
	t.Run("from callee", func(t *testing.T) {
		b, _ := established(t, nil)
		bye := b.fromCallee(0, sip.BYE, 1, nil)
		if fin := bye.final(); fin == nil || fin.StatusCode != 200 {
			t.Fatalf("BYE answered %v", fin)
		}
		byes := b.e.sentTo(b.caller, sip.BYE)
		if len(byes) != 1 || len(b.e.sentTo(b.devices[0], sip.BYE)) != 0 {
			t.Fatal("want one BYE to the caller and none back to the callee")
		}
		// The BYE to the caller is in the caller's dialog.
		if to, _ := byes[0].req.To().Params.Get("tag"); to != "callertag" {
			t.Fatalf("BYE to caller has To tag %q", to)
		}
		if from, _ := byes[0].req.From().Params.Get("tag"); from != "veiligA" {
			t.Fatalf("BYE to caller has From tag %q", from)
		}
		if rec := b.ended(); rec.Cause != "callee hung up" {
			t.Fatalf("record cause %q", rec.Cause)
		}
		b.idle()
	})
	t.Run("after the end", func(t *testing.T) {
		b, _ := established(t, nil)
		b.fromCaller(sip.BYE, 2, nil)
		if fin := b.fromCallee(0, sip.BYE, 1, nil).final(); fin == nil || fin.StatusCode != 481 {
			t.Fatalf("BYE in an ended dialog answered %v, want 481", fin)
		}
	})
	t.Run("from a stranger", func(t *testing.T) {
		b, _ := established(t, nil)
		other := newConn("127.0.0.99:40000")
		fin := b.inDialog(other, sip.BYE, "call-a@test", "callertag", "veiligA", 2, nil).final()
		if fin == nil || fin.StatusCode != 481 {
			t.Fatalf("BYE from another address answered %v, want 481", fin)
		}
		if calls, _ := b.m.Active(); calls != 1 {
			t.Fatal("a stranger's BYE ended the call")
		}
	})
}

// TestReinvite: a re-INVITE from either side is relayed with its SDP, the
// answer comes back and the other leg's 2xx is ACKed.
func TestReinvite(t *testing.T) {
	hold := func(host, key string) []byte {
		return []byte(strings.Replace(string(offerSDP(host, key)), "a=rtpmap", "a=sendonly\r\na=rtpmap", 1))
	}
	t.Run("from caller", func(t *testing.T) {
		b, _ := established(t, nil)
		re := b.fromCaller(sip.INVITE, 2, hold("127.0.0.10", keyA))
		fwd := b.e.sentTo(b.devices[0], sip.INVITE)
		if len(fwd) != 2 || !strings.Contains(string(fwd[1].req.Body()), "a=sendonly") {
			t.Fatal("re-INVITE not relayed to the callee with its offer")
		}
		b.answer(fwd[1], 200, offerSDP("127.0.0.20", keyB))
		if fin := re.final(); fin == nil || fin.StatusCode != 200 || len(fin.Body()) == 0 {
			t.Fatalf("re-INVITE answered %v, want 200 with SDP", fin)
		}
		if len(b.e.acksTo(b.devices[0])) != 2 {
			t.Fatal("callee's 2xx to the re-INVITE not ACKed")
		}
		// A second one while this is settled works too.
		b.fromCaller(sip.INVITE, 3, offerSDP("127.0.0.10", keyA))
		if len(b.e.sentTo(b.devices[0], sip.INVITE)) != 3 {
			t.Fatal("second re-INVITE not relayed")
		}
	})
	t.Run("from callee", func(t *testing.T) {
		b, _ := established(t, nil)
		re := b.fromCallee(0, sip.INVITE, 1, hold("127.0.0.20", keyB))
		fwd := b.e.sentTo(b.caller, sip.INVITE)
		if len(fwd) != 1 || !strings.Contains(string(fwd[0].req.Body()), "a=sendonly") {
			t.Fatal("re-INVITE not relayed to the caller with its offer")
		}
		if tag, _ := fwd[0].req.To().Params.Get("tag"); tag != "callertag" {
			t.Fatalf("re-INVITE to the caller has To tag %q", tag)
		}
		b.answer(fwd[0], 200, offerSDP("127.0.0.10", keyA))
		if fin := re.final(); fin == nil || fin.StatusCode != 200 {
			t.Fatalf("re-INVITE answered %v", fin)
		}
		if len(b.e.acksTo(b.caller)) != 1 {
			t.Fatal("caller's 2xx to the re-INVITE not ACKed")
		}
	})
	t.Run("refused by the other side", func(t *testing.T) {
		b, _ := established(t, nil)
		re := b.fromCaller(sip.INVITE, 2, hold("127.0.0.10", keyA))
		b.answer(b.e.sentTo(b.devices[0], sip.INVITE)[1], 488, nil)
		if fin := re.final(); fin == nil || fin.StatusCode != 488 {
			t.Fatalf("re-INVITE answered %v, want the callee's 488", fin)
		}
		if calls, _ := b.m.Active(); calls != 1 {
			t.Fatal("a refused re-INVITE ended the call")
		}
	})
	t.Run("glare", func(t *testing.T) {
		b, _ := established(t, nil)
		b.fromCaller(sip.INVITE, 2, hold("127.0.0.10", keyA))
		if fin := b.fromCallee(0, sip.INVITE, 1, hold("127.0.0.20", keyB)).final(); fin == nil || fin.StatusCode != 491 {
			t.Fatalf("crossing re-INVITE answered %v, want 491", fin)
		}
	})
	t.Run("plain offer refused", func(t *testing.T) {
		b, _ := established(t, nil)
		plain := []byte(strings.Replace(string(offerSDP("127.0.0.10", keyA)), "RTP/SAVP", "RTP/AVP", 1))
		if fin := b.fromCaller(sip.INVITE, 2, plain).final(); fin == nil || fin.StatusCode != 488 {
			t.Fatalf("plain re-INVITE answered %v, want 488", fin)
		}
		if len(b.e.sentTo(b.devices[0], sip.INVITE)) != 1 || !b.ev.has(events.CallRefused) {
			t.Fatal("a plain offer must not be relayed, and must be reported")
		}
		if calls, _ := b.m.Active(); calls != 1 {
			t.Fatal("a refused offer ended the call")
		}
	})
	t.Run("without SDP", func(t *testing.T) {
		// A re-INVITE without an offer: the other side offers in its 2xx
		// and the answer comes in the requester's ACK.
		b, _ := established(t, nil)
		re := b.fromCaller(sip.INVITE, 2, nil)
		fwd := b.e.sentTo(b.devices[0], sip.INVITE)[1]
		if len(fwd.req.Body()) != 0 {
			t.Fatal("an offerless re-INVITE gained a body")
		}
		b.answer(fwd, 200, offerSDP("127.0.0.20", keyB))
		if fin := re.final(); fin == nil || fin.StatusCode != 200 || len(fin.Body()) == 0 {
			t.Fatalf("re-INVITE answered %v, want 200 with the offer", fin)
		}
		if len(b.e.acksTo(b.devices[0])) != 1 {
			t.Fatal("ACK sent before the answer arrived")
		}
		re.ack(t, offerSDP("127.0.0.10", keyA))
		acks := b.e.acksTo(b.devices[0])
		if len(acks) != 2 || len(acks[1].Body()) == 0 {
			t.Fatal("the answer in the caller's ACK was not passed on")
		}
	})
}

// TestReinviteKeepsPerLegKeys: through the relay each leg has its own SRTP
// key; renegotiation keeps it that way, and neither device ever sees the
// other's key.
func TestReinviteKeepsPerLegKeys(t *testing.T) {
	relay, err := media.New(media.Options{Address: netipLoopback, PortMin: 42000, PortMax: 42999, Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := newBench(t, 1, func(o *Options) { o.Relay = relay })
	tx := b.invite(offerSDP("127.0.0.10", keyA))
	toB := string(b.forkTo(0).req.Body())
	b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
	toA := string(tx.final().Body())
	tx.ack(t, nil)
	for what, sdp := range map[string]string{"offer to callee": toB, "answer to caller": toA} {
		if strings.Contains(sdp, keyA) || strings.Contains(sdp, keyB) || !strings.Contains(sdp, "a=crypto:") {
			t.Fatalf("%s carries a device's key or none:\n%s", what, sdp)
		}
	}
	re := b.fromCaller(sip.INVITE, 2, offerSDP("127.0.0.10", keyA))
	reToB := string(b.e.sentTo(b.devices[0], sip.INVITE)[1].req.Body())
	b.answer(b.e.sentTo(b.devices[0], sip.INVITE)[1], 200, offerSDP("127.0.0.20", keyB))
	reToA := string(re.final().Body())
	if strings.Contains(reToB, keyA) || strings.Contains(reToA, keyB) {
		t.Fatal("renegotiation leaked one device's key to the other")
	}
	if cryptoKey(reToB) == "" || cryptoKey(reToA) == "" || cryptoKey(reToB) == cryptoKey(reToA) {
		t.Fatalf("legs do not have keys of their own after renegotiation:\nto callee %s\nto caller %s", cryptoKey(reToB), cryptoKey(reToA))
	}
	// Hold and resume do not rekey: each leg keeps the key it negotiated.
	if !strings.Contains(toB, cryptoKey(reToB)) || cryptoKey(reToA) != cryptoKey(toA) {
		t.Fatalf("renegotiation changed a leg's key:\ncallee %s -> %s\ncaller %s -> %s", cryptoKey(toB), cryptoKey(reToB), cryptoKey(toA), cryptoKey(reToA))
	}
	b.fromCaller(sip.BYE, 3, nil)
	rec := b.ended()
	if !strings.HasPrefix(rec.CallerMedia, "SRTP") || !strings.HasPrefix(rec.CalleeMedia, "SRTP") {
		t.Fatalf("record media %q / %q, want SRTP on both legs", rec.CallerMedia, rec.CalleeMedia)
	}
}

// cryptoKey is the key of the first a=crypto line.
func cryptoKey(sdp string) string {
	for _, l := range strings.Split(sdp, "\r\n") {
		if _, key, ok := strings.Cut(l, " inline:"); ok && strings.HasPrefix(l, "a=crypto:") {
			key, _, _ = strings.Cut(key, "|")
			return key
		}
	}
	return ""
}

// TestLateOffer: an INVITE without SDP; the device offers in its 200, the
// caller answers in its ACK, and that answer goes to the device in ours.
func TestLateOffer(t *testing.T) {
	t.Run("answered in ACK", func(t *testing.T) {
		b := newBench(t, 1, nil)
		tx := b.invite(nil)
		if len(b.forkTo(0).req.Body()) != 0 {
			t.Fatal("late-offer INVITE gained a body")
		}
		b.answer(b.forkTo(0), 183, offerSDP("127.0.0.20", keyB))
		if got := tx.codes(); !slices.Equal(got, []int{100, 183}) || len(tx.res[1].Body()) != 0 {
			t.Fatal("early SDP to a late offer must be dropped (no reliable provisionals)")
		}
		b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
		if fin := tx.final(); fin == nil || fin.StatusCode != 200 || len(fin.Body()) == 0 {
			t.Fatalf("caller's final = %v, want 200 with the offer", fin)
		}
		if len(b.e.acksTo(b.devices[0])) != 0 {
			t.Fatal("callee ACKed before the caller's answer")
		}
		tx.ack(t, offerSDP("127.0.0.10", keyA))
		acks := b.e.acksTo(b.devices[0])
		if len(acks) != 1 || string(acks[0].Body()) != string(offerSDP("127.0.0.10", keyA)) {
			t.Fatal("the caller's answer did not reach the callee in the ACK")
		}
		if calls, _ := b.m.Active(); calls != 1 {
			t.Fatal("call not established")
		}
	})
	t.Run("ACK without answer", func(t *testing.T) {
		b := newBench(t, 1, nil)
		tx := b.invite(nil)
		b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
		tx.ack(t, nil)
		if len(b.e.sentTo(b.caller, sip.BYE)) != 1 || len(b.e.sentTo(b.devices[0], sip.BYE)) != 1 {
			t.Fatal("a late offer never answered must end the call on both legs")
		}
		if rec := b.ended(); !strings.HasPrefix(rec.Cause, "488") {
			t.Fatalf("record cause %q", rec.Cause)
		}
		b.idle()
	})
	t.Run("200 without offer", func(t *testing.T) {
		b := newBench(t, 1, nil)
		tx := b.invite(nil)
		b.answer(b.forkTo(0), 200, nil)
		if fin := tx.final(); fin == nil || fin.StatusCode != 488 {
			t.Fatalf("caller's final = %v, want 488", fin)
		}
		if len(b.e.sentTo(b.devices[0], sip.BYE)) != 1 {
			t.Fatal("the callee's offerless 2xx must be hung up")
		}
		b.idle()
	})
}

// TestTimers: no answer within the ring timeout, no ACK for our 2xx, the
// relay's media timeout and the maximum call length each end the call.
func TestTimers(t *testing.T) {
	t.Run("ring timeout", func(t *testing.T) {
		b := newBench(t, 2, func(o *Options) { o.RingTimeout = 20 * time.Millisecond })
		tx := b.invite(offerSDP("127.0.0.10", keyA))
		b.answer(b.forkTo(0), 180, nil)
		if rec := b.ended(); rec.Disposition != "no-answer" {
			t.Fatalf("disposition %q, want no-answer", rec.Disposition)
		}
		if fin := tx.final(); fin == nil || fin.StatusCode != 480 {
			t.Fatalf("caller's final = %v, want 480", fin)
		}
		if !b.forkTo(0).tx.wasCancelled() || !b.forkTo(1).tx.wasCancelled() {
			t.Fatal("ringing forks not cancelled")
		}
		b.idle()
	})
	t.Run("no ACK", func(t *testing.T) {
		b := newBench(t, 1, nil)
		tx := b.invite(offerSDP("127.0.0.10", keyA))
		b.answer(b.forkTo(0), 200, offerSDP("127.0.0.20", keyB))
		tx.noAck(t)
		if len(b.e.sentTo(b.caller, sip.BYE)) != 1 || len(b.e.sentTo(b.devices[0], sip.BYE)) != 1 {
			t.Fatal("an unacknowledged answer must end both legs")
		}
		if rec := b.ended(); rec.Cause != "caller never acknowledged the answer" {
			t.Fatalf("record cause %q", rec.Cause)
		}
		b.idle()
	})
	t.Run("media timeout", func(t *testing.T) {
		b, _ := established(t, nil)
		b.m.mediaEvent(media.Event{Kind: media.EventTimeout, CallID: "call-a@test"})
		if rec := b.ended(); rec.Cause != "media timeout" {
			t.Fatalf("record cause %q", rec.Cause)
		}
		if !b.ev.has(events.MediaTimeout) || len(b.e.sentTo(b.caller, sip.BYE)) != 1 || len(b.e.sentTo(b.devices[0], sip.BYE)) != 1 {
			t.Fatal("media timeout must be reported and end both legs")
		}
		b.idle()
	})
	t.Run("re-INVITE answer never acknowledged", func(t *testing.T) {
		b, _ := established(t, nil)
		re := b.fromCaller(sip.INVITE, 2, offerSDP("127.0.0.10", keyA))
		b.answer(b.e.sentTo(b.devices[0], sip.INVITE)[1], 200, offerSDP("127.0.0.20", keyB))
		re.noAck(t)
		if rec := b.ended(); rec.Cause != "re-INVITE answer never acknowledged" {
			t.Fatalf("record cause %q", rec.Cause)
		}
		b.idle()
	})
	t.Run("maximum duration", func(t *testing.T) {
		b, _ := established(t, func(o *Options) { o.MaxDuration = 20 * time.Millisecond })
		if rec := b.ended(); rec.Cause != "maximum call duration reached" {
			t.Fatalf("record cause %q", rec.Cause)
		}
		b.idle()
	})
	t.Run("hangup while ringing", func(t *testing.T) {
		b := newBench(t, 1, nil)
		tx := b.invite(offerSDP("127.0.0.10", keyA))
		if !b.m.Hangup("call-a@test", "ended by an admin") {
			t.Fatal("Hangup found no call")
		}
		if fin := tx.final(); fin == nil || fin.StatusCode != 480 || !b.forkTo(0).tx.wasCancelled() {
			t.Fatal("hanging up a ringing call must answer 480 and cancel the forks")
		}
		b.idle()
	})
}

// TestOutOfDialogMethods: OPTIONS is answered with the one Allow list and
// other methods outside a dialog are refused with it.
func TestOutOfDialogMethods(t *testing.T) {
	b := newBench(t, 0, nil)
	for _, tc := range []struct {
		method sip.RequestMethod
		code   int
	}{{sip.OPTIONS, 200}, {sip.MESSAGE, 405}} {
		req := parse(t, []string{
			string(tc.method) + " sip:1002@veilig.test SIP/2.0",
			"Via: SIP/2.0/TLS 127.0.0.10:40000;branch=z9hG4bKood",
			"From: <sip:1001@veilig.test>;tag=x", "To: <sip:1002@veilig.test>",
			"Call-ID: ood@test", "CSeq: 1 " + string(tc.method),
		}, nil)
		tx := &fakeServerTx{req: req}
		if err := b.m.serve(t.Context(), &request{Request: req, Conn: b.caller, Tx: tx, ua: "veilig-test"}); err != nil {
			t.Fatal(err)
		}
		fin := tx.final()
		if fin == nil || fin.StatusCode != tc.code || fin.GetHeader("Allow") == nil ||
			fin.GetHeader("Allow").Value() != "INVITE, ACK, CANCEL, BYE, REGISTER, OPTIONS, INFO, UPDATE" {
			t.Fatalf("%s answered %v", tc.method, fin)
		}
	}
}
