package main

import (
	"strings"
	"testing"
)

func TestOfferedTagPicksTheCallersSuite(t *testing.T) {
	// An offer as Veilig makes it to a callee: several suites, _80 not first.
	offer := "v=0\r\nm=audio 4000 RTP/SAVP 0\r\n" +
		"a=crypto:1 AEAD_AES_128_GCM inline:AAAA\r\n" +
		"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:BBBB\r\n" +
		"a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:CCCC\r\n"
	tag, ok := offeredTag(offer, calleeSuite)
	if !ok || tag != "3" {
		t.Fatalf("offeredTag = %q, %v; want 3, true", tag, ok)
	}
	if _, ok := offeredTag("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", calleeSuite); ok {
		t.Fatal("a plain RTP offer has no SDES line to accept")
	}
	sdp := answerSDP(tag)
	if !strings.Contains(sdp, "a=crypto:3 AES_CM_128_HMAC_SHA1_80 "+calleeKey+"\r\n") ||
		!strings.Contains(sdp, "m=audio 17000 RTP/SAVP 0\r\n") {
		t.Fatalf("answer:\n%s", sdp)
	}
}
