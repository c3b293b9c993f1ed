package sipedge

import (
	"hash/maphash"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RFC 3261 timer values.
const (
	T1 = 500 * time.Millisecond
	T2 = 4 * time.Second
	T4 = 5 * time.Second
	// TimerB is 64*T1: how long a transaction waits for a final answer or ACK.
	TimerB = 64 * T1
)

// Server transaction states (RFC 3261 17.2, with RFC 6026's Accepted).
const (
	stProceeding = iota
	stCompleted
	stConfirmed
	stAccepted
	stTerminated
)

// ServerTx is one server transaction. Handlers answer through it; it
// absorbs retransmitted requests by resending the last response and, on
// UDP, retransmits final INVITE responses until they are acknowledged.
type ServerTx struct {
	key    string
	edge   *Edge
	conn   Conn
	req    *sip.Request
	invite bool

	mu        sync.Mutex
	state     int
	last      []byte
	lastCode  int
	expires   time.Time
	retrans   *time.Timer
	interval  time.Duration
	onCancel  func()
	onAck     func(*sip.Request)
	onNoAck   func()
	ackKey    string
	cancelled bool
	toTag     string
}

// Request is the request that created the transaction. A non-INVITE
// transaction lets go of it once answered, an INVITE once its 2xx is
// acknowledged (nil after that): on UDP they linger 32 s to absorb
// retransmissions, and keeping only the encoded answer keeps that cheap.
func (tx *ServerTx) Request() *sip.Request {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.req
}

// Conn is the connection the request came on.
func (tx *ServerTx) Conn() Conn { return tx.conn }

// ToTag is the tag this transaction's responses carry (made on first use),
// so every response to one request names the same dialog.
func (tx *ServerTx) ToTag() string {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.toTag == "" {
		if tx.req == nil {
			// Answered already: the tag was fixed by then.
		} else if to := tx.req.To(); to != nil {
			if t, ok := to.Params.Get("tag"); ok && t != "" {
				tx.toTag = t
			}
		}
		if tx.toTag == "" {
			tx.toTag = newTag()
		}
	}
	return tx.toTag
}

// SetToTag fixes the tag of this transaction's responses before the first
// is sent (the auth stage derives it from the request).
func (tx *ServerTx) SetToTag(tag string) {
	tx.mu.Lock()
	if tx.toTag == "" {
		tx.toTag = tag
	}
	tx.mu.Unlock()
}

// Respond sends a response and moves the state machine. A response sent
// after the final one is ignored.
func (tx *ServerTx) Respond(res *sip.Response) error {
	if tx.Final() {
		return nil
	}
	if res.StatusCode > 100 {
		// Every response to one request names the same dialog: the tag
		// of this transaction, whatever the response was built with.
		if to := res.To(); to != nil {
			tag := tx.ToTag()
			if cur, _ := to.Params.Get("tag"); cur != tag {
				to.Params.Remove("tag")
				to.Params.Add("tag", tag)
			}
		}
	}
	markReceived(res, tx.conn.Peer())
	raw := encode(res)
	accepted := false
	tx.mu.Lock()
	if tx.state != stProceeding {
		tx.mu.Unlock()
		return nil
	}
	tx.last, tx.lastCode = raw, res.StatusCode
	now := time.Now()
	if res.StatusCode >= 200 {
		// A CANCEL can no longer change anything, and a failed INVITE
		// gets no 2xx ACK: let the call go now rather than when the
		// transaction ends up to 32 s later.
		tx.onCancel = nil
		if res.StatusCode >= 300 {
			tx.onAck, tx.onNoAck = nil, nil
		}
	}
	switch {
	case res.StatusCode < 200:
	case !tx.invite:
		tx.state = stCompleted
		tx.req = nil
		if tx.conn.Reliable() {
			tx.expires = now
		} else {
			tx.expires = now.Add(TimerB)
		}
	case res.StatusCode < 300:
		tx.state = stAccepted
		tx.expires = now.Add(TimerB)
		tx.startRetrans(now)
		accepted = true
	default:
		tx.state = stCompleted
		tx.expires = now.Add(TimerB)
		tx.startRetrans(now)
	}
	tx.mu.Unlock()
	if accepted {
		// Ready for the ACK before the 2xx leaves: a fast peer's ACK
		// must not find nothing waiting for it.
		tx.edge.txs.awaitAck(tx.ackKey, tx)
	}
	err := tx.conn.Send(raw)
	if err != nil {
		tx.edge.metrics.sendErrors.Add(1)
	}
	return err
}

// startRetrans arms Timer G (UDP retransmission) and Timer H (give up
// waiting for ACK). Called with mu held.
func (tx *ServerTx) startRetrans(now time.Time) {
	tx.interval = T1
	tx.retrans = time.AfterFunc(tx.nextDelay(), tx.fire)
}

func (tx *ServerTx) nextDelay() time.Duration {
	if tx.conn.Reliable() {
		return TimerB
	}
	return tx.interval
}

func (tx *ServerTx) fire() {
	tx.mu.Lock()
	if tx.state != stCompleted && tx.state != stAccepted {
		tx.mu.Unlock()
		return
	}
	if time.Now().After(tx.expires) || tx.conn.Reliable() {
		// Timer H / 2xx never acknowledged.
		accepted := tx.state == stAccepted
		tx.state = stTerminated
		noAck := tx.onNoAck
		tx.onAck, tx.onNoAck = nil, nil
		tx.mu.Unlock()
		tx.edge.txs.ackDone(tx.ackKey, tx)
		if accepted && noAck != nil {
			noAck()
		}
		return
	}
	raw := tx.last
	tx.interval *= 2
	if tx.interval > T2 {
		tx.interval = T2
	}
	tx.retrans = time.AfterFunc(tx.interval, tx.fire)
	tx.mu.Unlock()
	_ = tx.conn.Send(raw)
}

// OnCancel sets what runs when a CANCEL for this INVITE arrives. If it has
// already arrived, f runs at once.
func (tx *ServerTx) OnCancel(f func()) {
	tx.mu.Lock()
	if tx.cancelled {
		tx.mu.Unlock()
		f()
		return
	}
	tx.onCancel = f
	tx.mu.Unlock()
}

// OnAck sets what runs when the ACK for a 2xx arrives, and OnNoAck what
// runs when it never does (the dialog must then be torn down).
func (tx *ServerTx) OnAck(f func(*sip.Request)) { tx.mu.Lock(); tx.onAck = f; tx.mu.Unlock() }
func (tx *ServerTx) OnNoAck(f func())           { tx.mu.Lock(); tx.onNoAck = f; tx.mu.Unlock() }

// Final reports whether a final response has been sent.
func (tx *ServerTx) Final() bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.state != stProceeding
}

func (tx *ServerTx) retransmitted() {
	tx.mu.Lock()
	raw := tx.last
	tx.mu.Unlock()
	if raw != nil {
		_ = tx.conn.Send(raw)
	}
}

func (tx *ServerTx) cancel() bool {
	tx.mu.Lock()
	if tx.state != stProceeding || tx.cancelled {
		tx.mu.Unlock()
		return false
	}
	tx.cancelled = true
	f := tx.onCancel
	tx.mu.Unlock()
	if f != nil {
		f()
	}
	return true
}

// ackNon2xx absorbs the ACK of a failed INVITE.
func (tx *ServerTx) ackNon2xx() {
	tx.mu.Lock()
	if tx.state == stCompleted {
		tx.state = stConfirmed
		tx.last = nil // only ACK retransmissions are left to absorb
		if tx.retrans != nil {
			tx.retrans.Stop()
			tx.retrans = nil
		}
		// Timer I: T4 on UDP to absorb ACK retransmissions, none on
		// reliable transports.
		tx.expires = time.Now()
		if !tx.conn.Reliable() {
			tx.expires = tx.expires.Add(T4)
		}
	}
	tx.mu.Unlock()
}

func (tx *ServerTx) ack2xx(ack *sip.Request) {
	tx.mu.Lock()
	if tx.state != stAccepted {
		tx.mu.Unlock()
		return
	}
	tx.state = stConfirmed
	if tx.retrans != nil {
		tx.retrans.Stop()
		tx.retrans = nil
	}
	tx.expires = time.Now().Add(TimerB)
	f := tx.onAck
	tx.onAck, tx.onNoAck = nil, nil
	// Acknowledged: what lingers (Timer L) only absorbs retransmitted
	// INVITEs, silently (RFC 6026 section 7.1), so neither the request
	// nor the encoded 2xx is needed.
	tx.req, tx.last = nil, nil
	tx.mu.Unlock()
	if f != nil {
		f(ack)
	}
}

func (tx *ServerTx) expired(now time.Time) bool {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.state == stProceeding {
		// A handler that never answers must not pin memory: give up after
		// a generous ceiling (the call layer's own timers are shorter).
		return now.Sub(tx.expires) > 0
	}
	return tx.state == stTerminated || now.After(tx.expires)
}

// ackKey matches the ACK of a 2xx to its INVITE: same Call-ID and CSeq number.
func ackKey(r *sip.Request) string {
	cid := ""
	if h := r.CallID(); h != nil {
		cid = string(*h)
	}
	var n uint32
	if cs := r.CSeq(); cs != nil {
		n = cs.SeqNo
	}
	return cid + " " + strconv.FormatUint(uint64(n), 10)
}

// txKey identifies a server transaction: RFC 3261 17.2.3 (branch, sent-by,
// method; ACK and CANCEL match their INVITE by branch).
func serverKey(r *sip.Request, method string) string {
	v := r.Via()
	return v.Params.GetOr("branch", "") + "|" + v.Host + ":" + strconv.Itoa(v.Port) + "|" + method
}

const shards = 64

type txShard struct {
	mu  sync.Mutex
	srv map[string]*ServerTx
	cli map[string]*ClientTx
	ack map[string]*ServerTx
}

// txTable holds live transactions in shards so no global lock sits on
// the message path.
type txTable struct {
	seed   maphash.Seed
	shards [shards]txShard
}

func newTxTable() *txTable {
	t := &txTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].srv = make(map[string]*ServerTx)
		t.shards[i].cli = make(map[string]*ClientTx)
		t.shards[i].ack = make(map[string]*ServerTx)
	}
	return t
}

func (t *txTable) shard(key string) *txShard {
	return &t.shards[maphash.String(t.seed, key)%shards]
}

// serverTx returns the transaction for key, creating it with mk when absent.
func (t *txTable) serverTx(key string, mk func() *ServerTx) (tx *ServerTx, created bool) {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if tx, ok := s.srv[key]; ok {
		return tx, false
	}
	if mk == nil {
		return nil, false
	}
	tx = mk()
	s.srv[key] = tx
	return tx, true
}

func (t *txTable) awaitAck(key string, tx *ServerTx) {
	s := t.shard(key)
	s.mu.Lock()
	s.ack[key] = tx
	s.mu.Unlock()
}

func (t *txTable) ackDone(key string, tx *ServerTx) {
	if key == "" {
		return
	}
	s := t.shard(key)
	s.mu.Lock()
	if s.ack[key] == tx {
		delete(s.ack, key)
	}
	s.mu.Unlock()
}

func (t *txTable) takeAck(key string) *ServerTx {
	s := t.shard(key)
	s.mu.Lock()
	tx := s.ack[key]
	delete(s.ack, key)
	s.mu.Unlock()
	return tx
}

func (t *txTable) clientTx(key string) *ClientTx {
	s := t.shard(key)
	s.mu.Lock()
	tx := s.cli[key]
	s.mu.Unlock()
	return tx
}

func (t *txTable) addClient(key string, tx *ClientTx) {
	s := t.shard(key)
	s.mu.Lock()
	s.cli[key] = tx
	s.mu.Unlock()
}

func (t *txTable) removeClient(key string, tx *ClientTx) {
	s := t.shard(key)
	s.mu.Lock()
	if s.cli[key] == tx {
		delete(s.cli, key)
	}
	s.mu.Unlock()
}

// sweep drops finished server transactions. One pass a second replaces a
// timer per request (sipgo's 10 s timer per request cost ~8 % CPU).
func (t *txTable) sweep(now time.Time) (n int) {
	var gone []*ServerTx
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k, tx := range s.srv {
			if tx.expired(now) {
				delete(s.srv, k)
				gone = append(gone, tx)
				continue
			}
			n++
		}
		s.mu.Unlock()
	}
	for _, tx := range gone {
		t.ackDone(tx.ackKey, tx)
	}
	return n
}

func (t *txTable) counts() (srv, cli int) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		srv += len(s.srv)
		cli += len(s.cli)
		s.mu.Unlock()
	}
	return
}

// markReceived records the socket source in the top Via of a response when
// the Via names another host (RFC 3261 18.2.1): the response goes to the
// source either way, and the peer learns where it was seen from.
func markReceived(res *sip.Response, peer netip.AddrPort) {
	v := res.Via()
	if v == nil || v.Params.Has("received") {
		return
	}
	ip := peer.Addr().String()
	if trimBrackets(v.Host) != ip {
		v.Params.Add("received", ip)
	}
}
