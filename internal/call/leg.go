package call

import (
	"strconv"

	"github.com/emiago/sipgo/sip"

	"github.com/veilig/veilig/internal/sipedge"
)

// leg is one side of a B2BUA call: a dialog between Veilig and one device.
// All fields are guarded by the owning Call's mutex.
type leg struct {
	call   *Call
	caller bool // the A side, whose INVITE created the call

	conn         sipedge.Conn
	callID       string
	localTag     string
	remoteTag    string
	localURI     sip.Uri // our From (B leg) or To (A leg) address
	localName    string
	remoteURI    sip.Uri
	remoteTarget sip.Uri // the device's Contact
	routeSet     []sip.Uri
	localCSeq    uint32
	remoteCSeq   uint32
	contact      sip.Uri

	// media is the protection negotiated on this leg.
	media Media

	// ack is the last ACK Veilig sent on this leg, resent when the
	// device retransmits its 2xx.
	ack []byte
	// pending is the re-INVITE in progress on this leg (we sent it).
	pending ClientTx
	// serving is the re-INVITE we received on this leg and have not
	// answered yet.
	serving ServerTx
}

func (l *leg) key() dialogKey { return dialogKey{callID: l.callID, tag: l.localTag} }

// newRequest builds a request inside this leg's dialog (RFC 3261 12.2.1.1).
func (l *leg) newRequest(method sip.RequestMethod, ua string) *sip.Request {
	req := sip.NewRequest(method, *l.remoteTarget.Clone())
	for _, r := range l.routeSet {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	from := &sip.FromHeader{DisplayName: l.localName, Address: *l.localURI.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", l.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: *l.remoteURI.Clone(), Params: sip.NewParams()}
	if l.remoteTag != "" {
		to.Params.Add("tag", l.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(l.callID)
	req.AppendHeader(&cid)
	if method != sip.ACK {
		l.localCSeq++
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: l.localCSeq, MethodName: method})
	if method == sip.INVITE || method == sip.UPDATE {
		req.AppendHeader(&sip.ContactHeader{Address: *l.contact.Clone(), Params: sip.NewParams()})
	}
	req.AppendHeader(sip.NewHeader("User-Agent", ua))
	return req
}

// ackFor2xx builds the ACK of a 2xx to the INVITE with CSeq n.
func (l *leg) ackFor2xx(n uint32, ua string) *sip.Request {
	save := l.localCSeq
	l.localCSeq = n
	ack := l.newRequest(sip.ACK, ua)
	l.localCSeq = save
	return ack
}

func cseqString(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
