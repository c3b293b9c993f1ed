package call

import (
	"errors"
	"strings"
	"testing"
)

const key30 = "KKI8ly2hE+fvyPMaLU93cPhzlxM8dg8yjeiOLKDA" // 30 bytes base64
const key28 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==" // 28 bytes

func sdpBody(mline string, attrs ...string) []byte {
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + mline + "\r\na=rtpmap:0 PCMU/8000\r\n"
	for _, a := range attrs {
		s += a + "\r\n"
	}
	return []byte(s)
}

func TestCheckSRTP(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		answer bool
		suite  string
		err    string
	}{
		{"savp with crypto", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30), false, "AES_CM_128_HMAC_SHA1_80", ""},
		{"savpf with crypto", sdpBody("m=audio 4000 RTP/SAVPF 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"+key30+"|2^31"), false, "AES_CM_128_HMAC_SHA1_32", ""},
		{"gcm", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AEAD_AES_128_GCM inline:"+key28), true, "AEAD_AES_128_GCM", ""},
		{"offer skips unknown suite", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 F8_128_HMAC_SHA1_80 inline:"+key30, "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"+key30), false, "AES_CM_128_HMAC_SHA1_80", ""},
		{"plain RTP/AVP", sdpBody("m=audio 4000 RTP/AVP 0"), false, "", "uses RTP/AVP"},
		{"savp without crypto", sdpBody("m=audio 4000 RTP/SAVP 0"), false, "", "no acceptable a=crypto"},
		{"only unknown suite", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 NULL_HMAC inline:"+key30), false, "", "no acceptable a=crypto"},
		{"unencrypted session param", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30+" UNENCRYPTED_SRTP"), false, "", "disables protection"},
		{"short key", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA"), false, "", "malformed key"},
		{"answer with two crypto", sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30, "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"+key30), true, "", "exactly one"},
		{"dtls profile is not sdes", sdpBody("m=audio 4000 UDP/TLS/RTP/SAVPF 0"), false, "", "need RTP/SAVP"},
		{"second stream plain", append(sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30), []byte("m=video 4002 RTP/AVP 96\r\n")...), false, "", "stream 2"},
		{"disabled stream ignored", append(sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30), []byte("m=video 0 RTP/AVP 96\r\n")...), false, "AES_CM_128_HMAC_SHA1_80", ""},
		{"garbage", []byte("hello"), false, "", "malformed SDP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CheckSRTP(tt.body, tt.answer)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrNotSecure) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if m.Suite != tt.suite {
				t.Fatalf("suite = %q, want %q", m.Suite, tt.suite)
			}
		})
	}
}

func FuzzCheckSRTP(f *testing.F) {
	f.Add(sdpBody("m=audio 4000 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30), false)
	f.Add([]byte("v=0\r\nm=audio 1 RTP/AVP 0\r\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, answer bool) {
		m, err := CheckSRTP(body, answer)
		if err == nil && m.Active > 0 && m.Suite == "" {
			t.Fatal("active media accepted without a suite")
		}
	})
}
