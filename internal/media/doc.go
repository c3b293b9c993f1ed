// Package media is Veilig's SRTP media relay (the B2BUA anchors every call's
// audio here).
//
// Each call is a Session with two Legs, one per device. Each leg owns one
// UDP port for RTP and muxed RTCP (and the next port for RTCP only when the
// device does not mux). Veilig generates its own SRTP key per leg, so the
// relay decrypts what one device sends and re-encrypts it for the other;
// neither device learns the other's key, and one leg may be plain RTP where a
// trunk is configured so.
//
// One audio stream per call is anchored; any other stream in an offer
// (video, a second audio line) is not offered onward and is declined with
// port 0, so nothing flows around the relay. Codecs are not transcoded: the
// onward offer carries the intersection of the offer and policy, and when
// the two devices number a codec differently the relay rewrites the RTP
// payload type (the header is re-protected anyway).
//
// Security properties, always on:
//   - A leg learns or changes where to send (symmetric RTP latching, for NAT)
//     only from a packet that authenticates under that leg's SRTP key and
//     passes the replay window. Until then it sends to the address from SDP.
//     Spoofed, forged or replayed packets are dropped and counted; a burst
//     raises a media.injection event (at most one per leg per 30 s).
//   - Plain RTP is accepted only on legs explicitly allowed (trunks), and
//     only from the signalled IP address.
//
// Efficiency: sockets are raw non-blocking fds served by one epoll loop per
// worker (GOMAXPROCS by default). They are not net.UDPConns batched with
// golang.org/x/net/ipv4's ReadBatch/WriteBatch: those batch per socket, and
// a relay socket carries one packet per 20 ms, so a batch has to span
// sockets. Each epoll round hands all its receives to the kernel in one
// io_uring submission and all the forwards in another (recvmmsg/sendmmsg
// per socket where io_uring is unavailable). Buffers are preallocated, so
// the forward path allocates nothing in steady state and costs no goroutine
// wake-up per packet; the loop parks in Go's netpoller only when no socket
// is ready. Every session belongs to one worker, whose mutex is the only
// lock on the path: there is no global lock.
package media
