package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBaresipSRTPCall: two real softphones register over TLS with
// generated secrets and call each other through Veilig with mandatory SRTP.
// It proves the call connects, the media on the wire is SRTP (high entropy,
// no tone when decoded as PCMU), each side hears the other's tone, BYE ends
// the call and the call record says answered with SRTP on both legs.
func TestBaresipSRTPCall(t *testing.T) {
	// baresip 1.0.0 (libre 1.1.0) gives up with ENOSYS ("Register: Function
	// not implemented") when a 401 carries any non-MD5 challenge; Veilig's
	// default auth.md5_only_user_agents offers it MD5 alone.
	srv := startServer(t, serverOptions{Extra: "media:\n  port_range: " + relayPorts + "\n"})
	testBaresipSRTPCall(t, srv, srv.tlsAddr)
}

// testBaresipSRTPCall runs the call; proxyAddr is where the phones send
// SIP (the server's TLS listener, or a relay in front of it).
func testBaresipSRTPCall(t *testing.T, srv *server, proxyAddr string) {
	requireTools(t, "baresip", "sox", "tshark")
	requireRoot(t, "packet capture")
	secretA := srv.addExtension(t, "1001")
	secretB := srv.addExtension(t, "1002")

	tone := filepath.Join(artifactDir(t), "tone700.wav")
	makeTone(t, tone, 700, 60)
	loA := freeUDPRange(t, "127.0.0.2", phoneRTPPorts)
	loB := freeUDPRange(t, "127.0.0.3", phoneRTPPorts)
	for loB/phoneRTPPorts == loA/phoneRTPPorts {
		loB = freeUDPRange(t, "127.0.0.3", phoneRTPPorts)
	}
	rangeA := fmt.Sprintf("%d-%d", loA, loA+phoneRTPPorts-1)
	rangeB := fmt.Sprintf("%d-%d", loB, loB+phoneRTPPorts-1)
	capt := startCapture(t, "media", "lo", fmt.Sprintf("udp and (portrange %s or portrange %s or portrange %s)", rangeA, rangeB, relayPorts))

	b := startPhone(t, srv, phoneConfig{name: "b", ext: "1002", secret: secretB, ip: "127.0.0.3",
		proxy: proxyAddr, audioSource: "aufile," + tone, autoAnswer: true, rtpLo: loB})
	b.waitRegistered(t, 20*time.Second)
	a := startPhone(t, srv, phoneConfig{name: "a", ext: "1001", secret: secretA, ip: "127.0.0.2",
		proxy: proxyAddr, audioSource: "ausine,1000", rtpLo: loA})
	a.waitRegistered(t, 20*time.Second)
	srv.waitEvent(t, 5*time.Second, "register", forAccount("1001"))
	srv.waitEvent(t, 5*time.Second, "register", forAccount("1002"))

	a.do(t, "dial", "sip:1002@"+proxyAddr)
	a.waitEvent(t, "CALL_ESTABLISHED", 20*time.Second)
	b.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
	a.waitEvent(t, "CALL_MENC", 5*time.Second)
	b.waitEvent(t, "CALL_MENC", 5*time.Second)
	time.Sleep(8 * time.Second) // media flows both ways

	a.do(t, "hangup", "")
	a.waitEvent(t, "CALL_CLOSED", 10*time.Second)
	b.waitEvent(t, "CALL_CLOSED", 10*time.Second) // B got the BYE relayed by Veilig
	a.quit(t)
	b.quit(t)
	pcap := capt.stop(t)

	requireSRTPOnWire(t, rtpFlows(t, pcap, rangeA, rangeB, relayPorts))
	requireHeardTone(t, a, 700)
	requireHeardTone(t, b, 1000)

	rec := srv.waitCallRecord(t, 10*time.Second, "1001", "1002")
	if rec.Disposition != "answered" {
		t.Errorf("call record disposition = %q, want answered: %s", rec.Disposition, describeCall(rec))
	}
	if !mediaIsSRTP(rec.CallerMedia) || !mediaIsSRTP(rec.CalleeMedia) {
		t.Errorf("call record does not say SRTP on both legs: %s", describeCall(rec))
	}
	if rec.MediaInClear != false {
		t.Errorf("call record media_in_clear = %v, want false: %s", rec.MediaInClear, describeCall(rec))
	}
}

// relayPorts is the media relay's port range in the call tests, so the
// capture sees both legs (phone <-> relay on each side).
const relayPorts = "41000-41999"

// makeTone writes a 48 kHz stereo S16 WAV sine (what baresip's aufile
// source needs) of freq Hz lasting secs seconds.
func makeTone(t *testing.T, path string, freq, secs int) {
	t.Helper()
	out, code := runProc(t, procSpec{
		name: "sox-tone",
		args: []string{"sox", "-n", "-r", "48000", "-c", "2", "-b", "16", "-e", "signed-integer", path,
			"synth", fmt.Sprint(secs), "sine", fmt.Sprint(freq), "vol", "0.5"},
		timeout: 30 * time.Second,
	})
	if code != 0 {
		t.Fatalf("sox failed (%d): %s", code, out)
	}
}

// requireSRTPOnWire checks both directions of captured PCMU-typed media:
// enough packets, payloads that are all different with ~8 bits/byte of
// entropy and the 10-byte SRTP auth tag, and no tone when decoded as mu-law.
func requireSRTPOnWire(t *testing.T, flows []rtpFlow) {
	t.Helper()
	var summary []string
	for _, f := range flows {
		summary = append(summary, f.String())
	}
	t.Logf("media on the wire:\n  %s", strings.Join(summary, "\n  "))
	var big []rtpFlow
	for _, f := range flows {
		if f.packets >= 100 {
			big = append(big, f)
		}
	}
	// Anchored media: phone A <-> relay and relay <-> phone B, each both ways.
	if len(big) < 4 {
		t.Fatalf("want media on both legs in both directions (>= 100 packets each), saw %d flows: %v", len(big), summary)
	}
	for i := range big {
		for j := i + 1; j < len(big); j++ {
			for p := range big[i].payloads {
				if big[j].payloads[p] {
					t.Errorf("the same ciphertext crosses two hops (legs must have their own keys): %s and %s", big[i].key, big[j].key)
					break
				}
			}
		}
	}
	for _, f := range big {
		switch {
		case f.entropy < 7.5:
			t.Errorf("media looks unencrypted (entropy %.2f bits/byte < 7.5): %s", f.entropy, f)
		case f.toneShare > 0.2:
			t.Errorf("a tone is audible in the captured payload (PCMU in the clear?): %s", f)
		case float64(f.distinct) < 0.95*float64(f.packets):
			t.Errorf("payloads repeat (plain PCMU of a sine repeats): %s", f)
		case f.payloadLen != 170 && f.payloadLen != 164 && f.payloadLen != 176:
			t.Errorf("payload is %d bytes, want 160 PCMU + an SRTP auth tag (10, 4 or 16 bytes): %s", f.payloadLen, f)
		}
	}
}

// requireHeardTone checks the phone's recording of received audio for a
// tone at freq Hz (Goertzel over 1 s from the middle).
func requireHeardTone(t *testing.T, ph *phone, freq int) {
	t.Helper()
	files := ph.recordings("-dec.wav")
	if len(files) == 0 {
		t.Errorf("phone %s wrote no received-audio recording (*-dec.wav) in %s", ph.cfg.name, ph.recDir)
		return
	}
	w, err := readWAV(files[len(files)-1])
	if err != nil {
		t.Errorf("phone %s: %v", ph.cfg.name, err)
		return
	}
	if len(w.samples) < 2*w.rate {
		t.Errorf("phone %s: received recording has %d samples (< 2 s at %d Hz)", ph.cfg.name, len(w.samples), w.rate)
		return
	}
	mid := len(w.samples) / 2
	x := w.samples[mid-w.rate/2 : mid+w.rate/2]
	hz, share := dominantTone(x, w.rate, 100, 3000, 5)
	t.Logf("phone %s heard %d Hz (share %.2f, RMS %.0f) in %s", ph.cfg.name, hz, share, rms(x), files[len(files)-1])
	if hz < freq-15 || hz > freq+15 || share < 0.5 {
		t.Errorf("phone %s did not hear the %d Hz tone: strongest %d Hz with %.2f of the energy", ph.cfg.name, freq, hz, share)
	}
}
