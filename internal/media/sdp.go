//go:build linux

package media

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// ErrNotAcceptable means the SDP cannot be relayed under policy: the B2BUA
// answers 488 Not Acceptable Here. The wrapped text says why.
var ErrNotAcceptable = errors.New("media: not acceptable")

// sdpState is the offer/answer state of a session, guarded by Session.sdpMu
// (control path only; the packet path never reads it).
type sdpState struct {
	origin    [2]uint64 // o= session id Veilig uses towards each leg
	version   [2]uint64
	offerFrom LegID
	pending   bool
	layout    []mline  // the offerer's m-lines, to answer each one
	audioIdx  int      // index of the relayed audio stream in layout
	formats   []string // payload types kept from the offer, offerer's numbering
	onward    []string // the same in the numbering offered to the other device
	codecs    []string // codecID of each of formats, as the offerer maps it
	muxOffer  bool     // the offerer offered rtcp-mux
	answerFor Crypto   // Veilig's line for the answer to the offerer
	plainOff  bool     // the offerer's leg is plain
	proto     string   // the offerer's transport
}

type mline struct{ media, proto, format string }

// staticPT names the static payload types of RFC 3551 used in telephony.
var staticPT = map[string]string{"0": "PCMU", "3": "GSM", "4": "G723", "8": "PCMA", "9": "G722", "13": "CN", "18": "G729"}

// RewriteOffer takes the SDP offer a device sent on leg from and returns the
// offer to send to the device on the other leg: Veilig's address and the
// other leg's port, fresh Veilig keys (one a=crypto line per suite in
// Options.Suites, or the current key on a re-offer), rtcp-mux offered with
// an a=rtcp fallback port, and only the codecs allowed by policy (names such
// as "PCMU", case-insensitive; Options.Codecs). The offering device's key is
// installed for its leg at once, so early media works.
// Errors wrapping ErrNotAcceptable call for a 488.
func (s *Session) RewriteOffer(from LegID, offer []byte) ([]byte, error) {
	codecs := s.r.opt.Codecs
	s.sdpMu.Lock()
	defer s.sdpMu.Unlock()
	x, y := s.Leg(from), s.Leg(1-from)
	d, md, idx, err := parseAudio(offer)
	if err != nil {
		return nil, err
	}
	st := &s.sdp
	st.layout = st.layout[:0]
	for _, m := range d.MediaDescriptions {
		f := ""
		if len(m.MediaName.Formats) > 0 {
			f = m.MediaName.Formats[0]
		}
		st.layout = append(st.layout, mline{m.MediaName.Media, strings.Join(m.MediaName.Protos, "/"), f})
	}
	st.audioIdx = idx
	st.proto = strings.Join(md.MediaName.Protos, "/")

	// Codecs: the intersection of the offer and policy; DTMF and comfort
	// noise ride along only with a real codec.
	var keep []string
	for _, pt := range md.MediaName.Formats {
		name := codecName(md, pt)
		if isEventOrCN(name) || codecs == nil || slices.ContainsFunc(codecs, func(c string) bool { return strings.EqualFold(c, name) }) {
			keep = append(keep, pt)
		}
	}
	if !hasRealCodec(md, keep) {
		return nil, fmt.Errorf("%w: no codec in common", ErrNotAcceptable)
	}
	// A re-offer reaches the other device in that device's own numbering:
	// RFC 3264 section 8.3.2 forbids changing a payload type's meaning
	// within a session.
	keep, onward, toOther := y.renumber(keep)
	if !hasRealCodec(md, keep) {
		return nil, fmt.Errorf("%w: no codec left in the numbering the other device agreed to", ErrNotAcceptable)
	}
	st.formats, st.onward = keep, onward
	st.codecs = st.codecs[:0]
	for _, pt := range keep {
		st.codecs = append(st.codecs, codecID(md, pt))
	}

	// The offerer's protection.
	if err := s.acceptCrypto(x, md, st); err != nil {
		return nil, err
	}
	rtpAddr, rtcpAddr, mux, err := remoteAddrs(d, md)
	if err != nil {
		return nil, err
	}
	st.muxOffer = mux
	if !mux {
		if _, err := x.RTCPPort(); err != nil {
			return nil, err
		}
	}
	if !rtpAddr.Addr().IsUnspecified() {
		x.SetRemote(rtpAddr, rtcpAddr)
	}
	s.SetHold(isHold(md, rtpAddr))

	// The offer onward.
	out := s.baseSDP(1 - from)
	m := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: y.Port()}, Formats: onward}}
	cryptos, proto, err := s.offerCrypto(y)
	if err != nil {
		return nil, err
	}
	m.MediaName.Protos = strings.Split(proto, "/")
	copyCodecAttrs(m, md, keep, toOther)
	m.Attributes = append(m.Attributes, sdp.NewPropertyAttribute(direction(md)))
	m.Attributes = append(m.Attributes, sdp.NewPropertyAttribute("rtcp-mux"))
	ys := y.Stats()
	if !ys.Mux || ys.LocalRTCPPort != 0 || !ys.Remote.IsValid() {
		p, err := y.RTCPPort()
		if err != nil {
			return nil, err
		}
		m.Attributes = append(m.Attributes, sdp.NewAttribute("rtcp", strconv.Itoa(p)))
	}
	for _, c := range cryptos {
		m.Attributes = append(m.Attributes, sdp.NewAttribute("crypto", c.Attr()))
	}
	out.MediaDescriptions = []*sdp.MediaDescription{m}
	st.offerFrom, st.pending = from, true
	return marshal(out)
}

// RewriteAnswer takes the SDP answer the device on leg from sent to an offer
// made by RewriteOffer and returns the answer for the offering device. It
// installs the answering device's key and address, releases the spare RTCP
// port if it accepted rtcp-mux, and arms the media timeout.
func (s *Session) RewriteAnswer(from LegID, answer []byte) ([]byte, error) {
	s.sdpMu.Lock()
	defer s.sdpMu.Unlock()
	st := &s.sdp
	if !st.pending || st.offerFrom != 1-from {
		return nil, fmt.Errorf("%w: answer without an offer towards leg %s", ErrNotAcceptable, from)
	}
	y, x := s.Leg(from), s.Leg(1-from)
	d, md, _, err := parseAudio(answer)
	if err != nil {
		return nil, err
	}
	kept, formats, rename := st.matchAnswer(md)
	if !hasRealCodec(md, kept) {
		return nil, fmt.Errorf("%w: answer has no offered codec", ErrNotAcceptable)
	}

	// The answerer's key must answer one of Veilig's lines.
	var theirs *Crypto
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		c, err := ParseCrypto(a.Value)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotAcceptable, err)
		}
		theirs = &c
		break
	}
	switch {
	case theirs != nil:
		local, ok := y.offeredKey(theirs.Tag, theirs.Suite)
		if !ok {
			return nil, fmt.Errorf("%w: answer crypto tag %d %s was not offered", ErrNotAcceptable, theirs.Tag, theirs.Suite)
		}
		if err := y.SetCrypto(local, *theirs); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotAcceptable, err)
		}
	case strings.Join(md.MediaName.Protos, "/") == "RTP/AVP":
		if err := y.SetPlain(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotAcceptable, err)
		}
	default:
		return nil, fmt.Errorf("%w: answer without a=crypto", ErrNotAcceptable)
	}
	y.clearOffered()

	rtpAddr, rtcpAddr, mux, err := remoteAddrs(d, md)
	if err != nil {
		return nil, err
	}
	if mux {
		y.ReleaseRTCPPort()
	} else if _, err := y.RTCPPort(); err != nil {
		return nil, err
	}
	if !rtpAddr.Addr().IsUnspecified() {
		y.SetRemote(rtpAddr, rtcpAddr)
	}
	toOfferer, toAnswerer := ptMaps(rename)
	x.setPTMap(toOfferer)
	y.setPTMap(toAnswerer)

	// The answer back to the offerer, one m-line per offered stream.
	out := s.baseSDP(1 - from)
	for i, l := range st.layout {
		if i != st.audioIdx {
			out.MediaDescriptions = append(out.MediaDescriptions, &sdp.MediaDescription{MediaName: sdp.MediaName{
				Media: l.media, Port: sdp.RangedPort{Value: 0}, Protos: strings.Split(l.proto, "/"), Formats: []string{l.format}}})
			continue
		}
		m := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: x.Port()},
			Protos: strings.Split(st.proto, "/"), Formats: formats}}
		copyCodecAttrs(m, md, kept, rename)
		m.Attributes = append(m.Attributes, sdp.NewPropertyAttribute(direction(md)))
		if st.muxOffer {
			m.Attributes = append(m.Attributes, sdp.NewPropertyAttribute("rtcp-mux"))
		} else {
			p, err := x.RTCPPort()
			if err != nil {
				return nil, err
			}
			m.Attributes = append(m.Attributes, sdp.NewAttribute("rtcp", strconv.Itoa(p)))
		}
		if !st.plainOff {
			m.Attributes = append(m.Attributes, sdp.NewAttribute("crypto", st.answerFor.Attr()))
		}
		out.MediaDescriptions = append(out.MediaDescriptions, m)
	}
	st.pending = false
	hold := s.isHeld() || isHold(md, rtpAddr)
	s.SetHold(hold)
	s.Arm()
	return marshal(out)
}

func (s *Session) isHeld() bool {
	s.sh.mu.Lock()
	defer s.sh.mu.Unlock()
	return s.hold
}

// acceptCrypto picks the offerer's first usable a=crypto line (its order is
// its preference), installs it with Veilig's key for that leg, or falls back
// to plain RTP where allowed.
func (s *Session) acceptCrypto(x *Leg, md *sdp.MediaDescription, st *sdpState) error {
	proto := strings.Join(md.MediaName.Protos, "/")
	if strings.Contains(proto, "TLS") {
		return fmt.Errorf("%w: DTLS-SRTP (%s) not supported, SDES only", ErrNotAcceptable, proto)
	}
	for _, a := range md.Attributes {
		if a.Key != "crypto" {
			continue
		}
		remote, err := ParseCrypto(a.Value)
		if err != nil || !slices.Contains(s.r.opt.Suites, remote.Suite) {
			continue
		}
		local, ok := x.LocalCrypto()
		if !ok || local.Suite != remote.Suite {
			if local, err = NewCrypto(remote.Tag, remote.Suite); err != nil {
				return err
			}
		}
		local.Tag = remote.Tag
		if err := x.SetCrypto(local, remote); err != nil {
			return fmt.Errorf("%w: %v", ErrNotAcceptable, err)
		}
		st.answerFor, st.plainOff = local, false
		return nil
	}
	if strings.Contains(proto, "SAVP") {
		return fmt.Errorf("%w: no supported a=crypto suite", ErrNotAcceptable)
	}
	if err := x.SetPlain(); err != nil {
		return fmt.Errorf("%w: plain RTP offered: %v", ErrNotAcceptable, err)
	}
	st.plainOff = true
	return nil
}

// offerCrypto returns Veilig's keys to offer to leg y and the transport. A
// leg with keys already negotiated is re-offered the same key (no rekey on
// hold/resume); otherwise one fresh key per suite. A leg allowed plain RTP
// gets RTP/AVP with a=crypto lines (best-effort SRTP); all others RTP/SAVP.
func (s *Session) offerCrypto(y *Leg) ([]Crypto, string, error) {
	proto := "RTP/SAVP"
	sh := s.sh
	sh.mu.Lock()
	allowPlain := y.allowPlain
	if allowPlain {
		// A plain leg gets no keys at all: RTP/AVP with a=crypto lines
		// would hand keys to a peer that will not use them, over
		// signalling that may be unencrypted.
		sh.mu.Unlock()
		y.clearOffered()
		return nil, "RTP/AVP", nil
	}
	if y.txKey {
		c := clone(y.local)
		y.offered = []Crypto{c}
		sh.mu.Unlock()
		return []Crypto{c}, proto, nil
	}
	sh.mu.Unlock()
	var out []Crypto
	for i, suite := range s.r.opt.Suites {
		c, err := NewCrypto(i+1, suite)
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
	}
	sh.mu.Lock()
	y.offered = out
	sh.mu.Unlock()
	return out, proto, nil
}

func (l *Leg) offeredKey(tag int, suite Suite) (Crypto, bool) {
	l.sess.sh.mu.Lock()
	defer l.sess.sh.mu.Unlock()
	for _, c := range l.offered {
		if c.Tag == tag && c.Suite == suite {
			return clone(c), true
		}
	}
	// Some devices answer with their own tag numbering (RFC 4568 wants
	// the offered tag). The suite is what protects the media, so accept
	// the answer when exactly that suite was offered.
	for _, c := range l.offered {
		if c.Suite == suite {
			return clone(c), true
		}
	}
	return Crypto{}, false
}

func (l *Leg) clearOffered() {
	l.sess.sh.mu.Lock()
	l.offered = nil
	l.sess.sh.mu.Unlock()
}

func (s *Session) baseSDP(to LegID) *sdp.SessionDescription {
	st := &s.sdp
	if st.origin[to] == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		st.origin[to] = binary.BigEndian.Uint64(b[:]) >> 2
	}
	st.version[to]++
	addr := s.r.AdvertiseAddr()
	at := "IP4"
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() && !a.Is4In6() {
		at = "IP6"
	}
	return &sdp.SessionDescription{
		Origin: sdp.Origin{Username: "veilig", SessionID: st.origin[to], SessionVersion: st.version[to],
			NetworkType: "IN", AddressType: at, UnicastAddress: addr},
		SessionName:           "-",
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: at, Address: &sdp.Address{Address: addr}},
		TimeDescriptions:      []sdp.TimeDescription{{}},
	}
}

func marshal(d *sdp.SessionDescription) ([]byte, error) {
	b, err := d.Marshal()
	if err != nil {
		return nil, fmt.Errorf("media: marshal SDP: %w", err)
	}
	return b, nil
}

// parseAudio parses SDP and returns its first active audio stream.
func parseAudio(b []byte) (*sdp.SessionDescription, *sdp.MediaDescription, int, error) {
	var d sdp.SessionDescription
	if err := d.Unmarshal(b); err != nil {
		return nil, nil, 0, fmt.Errorf("%w: bad SDP: %v", ErrNotAcceptable, err)
	}
	for i, m := range d.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 && len(m.MediaName.Formats) > 0 {
			return &d, m, i, nil
		}
	}
	return nil, nil, 0, fmt.Errorf("%w: no audio stream", ErrNotAcceptable)
}

// remoteAddrs reads where the device receives RTP and RTCP.
func remoteAddrs(d *sdp.SessionDescription, md *sdp.MediaDescription) (rtp, rtcp netip.AddrPort, mux bool, err error) {
	ci := md.ConnectionInformation
	if ci == nil {
		ci = d.ConnectionInformation
	}
	if ci == nil || ci.Address == nil {
		return rtp, rtcp, false, fmt.Errorf("%w: no c= line", ErrNotAcceptable)
	}
	ip, err := netip.ParseAddr(ci.Address.Address)
	if err != nil {
		return rtp, rtcp, false, fmt.Errorf("%w: c= address %q: %v", ErrNotAcceptable, ci.Address.Address, err)
	}
	port := md.MediaName.Port.Value
	if port <= 0 || port > 65535 {
		return rtp, rtcp, false, fmt.Errorf("%w: port %d", ErrNotAcceptable, port)
	}
	ip = ip.Unmap()
	rtp = netip.AddrPortFrom(ip, uint16(port))
	if _, ok := md.Attribute("rtcp-mux"); ok {
		return rtp, netip.AddrPort{}, true, nil
	}
	rport, rip := port+1, ip
	if v, ok := md.Attribute("rtcp"); ok {
		f := strings.Fields(v)
		if p, err := strconv.Atoi(f[0]); err == nil && p > 0 && p <= 65535 {
			rport = p
		}
		if len(f) == 4 {
			if a, err := netip.ParseAddr(f[3]); err == nil {
				rip = a.Unmap()
			}
		}
	}
	if rport > 65535 {
		return rtp, rtcp, false, fmt.Errorf("%w: RTCP port %d", ErrNotAcceptable, rport)
	}
	return rtp, netip.AddrPortFrom(rip, uint16(rport)), false, nil
}

// matchAnswer pairs the answer's payload types with the offered ones by
// codec (name, clock rate, channels), not by number: an answerer may number
// a codec differently or reuse an offered number for another codec. It
// returns the answer's kept payload types, the same in the offerer's
// numbering, and the renumbering (answer's number -> offer's) where they
// differ.
func (st *sdpState) matchAnswer(md *sdp.MediaDescription) (kept, formats []string, rename map[string]string) {
	for _, pt := range md.MediaName.Formats {
		id := codecID(md, pt)
		i := slices.Index(st.onward, pt)
		if i < 0 || (id != "" && st.codecs[i] != "" && st.codecs[i] != id) {
			i = -1
			if id != "" {
				i = slices.Index(st.codecs, id)
			}
		}
		if i < 0 || slices.Contains(formats, st.formats[i]) {
			continue
		}
		kept = append(kept, pt)
		formats = append(formats, st.formats[i])
		if st.formats[i] != pt {
			if rename == nil {
				rename = map[string]string{}
			}
			rename[pt] = st.formats[i]
		}
	}
	return kept, formats, rename
}

// renumber translates the payload types pts, kept from an offer made by
// the device facing the other leg, into the numbering the device on l
// negotiated earlier (l.ptOut). It returns the types kept, the same in l's
// numbering, and the renaming for the offer's rtpmap/fmtp lines. A type
// whose translation would collide with one already used is left out of the
// offer rather than given a meaning l has not agreed to.
func (l *Leg) renumber(pts []string) (kept, onward []string, rename map[string]string) {
	sh := l.sess.sh
	sh.mu.Lock()
	mapped, table := l.ptMapped, l.ptOut
	sh.mu.Unlock()
	if !mapped {
		return pts, pts, nil
	}
	targets := map[string]bool{}
	for from, to := range table {
		if uint8(from) != to {
			targets[strconv.Itoa(int(to))] = true
		}
	}
	for _, p := range pts {
		n, err := strconv.ParseUint(p, 10, 7)
		to := p
		if err == nil && table[n] != uint8(n) {
			to = strconv.Itoa(int(table[n]))
		} else if targets[p] {
			continue // p means another codec to l
		}
		if slices.Contains(onward, to) {
			continue
		}
		kept, onward = append(kept, p), append(onward, to)
		if to != p {
			if rename == nil {
				rename = map[string]string{}
			}
			rename[p] = to
		}
	}
	return kept, onward, rename
}

// ptMaps turns an answer's renumbering into the relay's two directions: the
// numbers to write on RTP towards the offerer (answerer's -> offerer's) and
// towards the answerer (the inverse).
func ptMaps(rename map[string]string) (toOfferer, toAnswerer map[uint8]uint8) {
	if len(rename) == 0 {
		return nil, nil
	}
	toOfferer, toAnswerer = map[uint8]uint8{}, map[uint8]uint8{}
	for a, o := range rename {
		an, err1 := strconv.ParseUint(a, 10, 7)
		on, err2 := strconv.ParseUint(o, 10, 7)
		if err1 != nil || err2 != nil {
			continue
		}
		toOfferer[uint8(an)] = uint8(on)
		toAnswerer[uint8(on)] = uint8(an)
	}
	return toOfferer, toAnswerer
}

// codecID names what a payload type carries, for matching across legs:
// "pcmu/8000", "opus/48000/2", "telephone-event/8000"; "" when a dynamic
// type has no rtpmap.
func codecID(md *sdp.MediaDescription, pt string) string {
	for _, a := range md.Attributes {
		if a.Key == "rtpmap" {
			if p, rest, ok := strings.Cut(a.Value, " "); ok && p == pt {
				return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(rest)), "/1")
			}
		}
	}
	if n, ok := staticPT[pt]; ok {
		return strings.ToLower(n) + "/8000"
	}
	return ""
}

// isEventOrCN says whether a codec only rides along with a real one (DTMF
// events, comfort noise).
func isEventOrCN(name string) bool {
	return strings.EqualFold(name, "telephone-event") || strings.EqualFold(name, "CN")
}

// hasRealCodec says whether pts name a codec that carries audio itself.
func hasRealCodec(md *sdp.MediaDescription, pts []string) bool {
	return slices.ContainsFunc(pts, func(pt string) bool { return !isEventOrCN(codecName(md, pt)) })
}

// codecName is the encoding name of a payload type, lower case ("pcmu").
func codecName(md *sdp.MediaDescription, pt string) string {
	name, _, _ := strings.Cut(codecID(md, pt), "/")
	return name
}

// copyCodecAttrs copies rtpmap/fmtp for the kept payload types, renumbered
// by rename where it names them, and the packetisation attributes.
func copyCodecAttrs(dst, src *sdp.MediaDescription, pts []string, rename map[string]string) {
	for _, a := range src.Attributes {
		switch a.Key {
		case "rtpmap", "fmtp":
			if p, rest, _ := strings.Cut(a.Value, " "); slices.Contains(pts, p) {
				if to, ok := rename[p]; ok {
					a = sdp.NewAttribute(a.Key, to+" "+rest)
				}
				dst.Attributes = append(dst.Attributes, a)
			}
		case "ptime", "maxptime":
			dst.Attributes = append(dst.Attributes, a)
		}
	}
}

func direction(md *sdp.MediaDescription) string {
	for _, a := range md.Attributes {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return "sendrecv"
}

func isHold(md *sdp.MediaDescription, addr netip.AddrPort) bool {
	d := direction(md)
	return d == "sendonly" || d == "inactive" || addr.Addr().IsUnspecified()
}
