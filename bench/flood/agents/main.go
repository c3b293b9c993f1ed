// Command agents registers SIP users over UDP at a fixed rate from one
// address (agents behind one NAT) with MD5 digest auth, and reports each
// registration's latency: REGISTER -> 401 -> REGISTER+auth -> 200.
//
//	agents -server 127.0.0.1:5060 -local 127.0.0.10 -users users.txt \
//	       -domain bench.test -rate 200 -duration 10s
//
// users.txt has user:password lines. Requests are retransmitted like a UA
// would over UDP (RFC 3261 Timer E: 500 ms, 1 s, 2 s); a registration that
// has no 200 within -timeout counts as failed. The summary is one JSON line
// on stdout. With -acked FILE, every registration answered 200 is written
// there at once as "user<TAB>contact" (for crash tests: each line is a
// registration the server acknowledged).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/veilig/veilig/internal/testkit/sipua"
)

type user struct{ name, pass string }

type result struct {
	Offered     int            `json:"offered"`
	OK          int            `json:"ok"`
	Failed      int            `json:"failed"`
	SuccessPct  float64        `json:"success_pct"`
	P50ms       float64        `json:"p50_ms"`
	P99ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
	Retransmits int            `json:"retransmits"`
	Codes       map[string]int `json:"final_codes"`
	Seconds     float64        `json:"seconds"`
}

func main() {
	server := flag.String("server", "127.0.0.1:5060", "registrar host:port (UDP)")
	local := flag.String("local", "127.0.0.10", "source IP of all agents")
	usersFile := flag.String("users", "", "user:password lines")
	domain := flag.String("domain", "", "SIP domain / digest realm")
	rate := flag.Float64("rate", 200, "registrations started per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to start registrations")
	sockets := flag.Int("sockets", 32, "UDP sockets (NAT mappings) the agents share")
	timeout := flag.Duration("timeout", 4*time.Second, "a registration without 200 within this fails")
	expires := flag.Int("expires", 300, "Expires of each registration")
	ackedPath := flag.String("acked", "", "append each registration answered 200 to this file")
	flag.Parse()
	var acked *os.File
	if *ackedPath != "" {
		f, err := os.OpenFile(*ackedPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "agents: acked:", err)
			os.Exit(2)
		}
		defer f.Close()
		acked = f
	}
	users, err := readUsers(*usersFile)
	if err != nil || len(users) == 0 {
		fmt.Fprintln(os.Stderr, "agents: users:", err)
		os.Exit(2)
	}
	raddr, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agents:", err)
		os.Exit(2)
	}
	var socks []*sock
	for i := 0; i < *sockets; i++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(*local)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "agents: listen:", err)
			os.Exit(2)
		}
		s := &sock{c: c, raddr: raddr, wait: map[string]chan string{}}
		go s.readLoop()
		socks = append(socks, s)
	}
	n := int(*rate * duration.Seconds())
	var (
		mu      sync.Mutex
		lat     []float64
		failed  int
		retrans int
		codes   = map[string]int{}
		wg      sync.WaitGroup
	)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / *rate)
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		u := users[i%len(users)]
		s := socks[i%len(socks)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, code, rt, ok := register(s, u, *domain, *expires, *timeout)
			mu.Lock()
			defer mu.Unlock()
			if ok && acked != nil {
				// One write per line, unbuffered: the line exists as soon as
				// the 200 has arrived.
				_, _ = fmt.Fprintf(acked, "%s\tsip:%s@%s\n", u.name, u.name, s.c.LocalAddr().String())
			}
			retrans += rt
			codes[code]++
			if ok {
				lat = append(lat, float64(d.Microseconds())/1000)
			} else {
				failed++
			}
		}()
	}
	wg.Wait()
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(float64(len(lat))*p+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(lat) {
			i = len(lat) - 1
		}
		return lat[i]
	}
	r := result{Offered: n, OK: len(lat), Failed: failed, P50ms: pct(0.50), P99ms: pct(0.99), Retransmits: retrans,
		Codes: codes, Seconds: time.Since(start).Seconds()}
	if len(lat) > 0 {
		r.MaxMs = lat[len(lat)-1]
	}
	if n > 0 {
		r.SuccessPct = 100 * float64(len(lat)) / float64(n)
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
}

func readUsers(path string) ([]user, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var us []user
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		n, p, ok := strings.Cut(l, ":")
		if ok {
			us = append(us, user{n, p})
		}
	}
	return us, sc.Err()
}

// sock is one UDP socket; responses are handed to the waiting
// registration by Call-ID.
type sock struct {
	c     *net.UDPConn
	raddr *net.UDPAddr
	mu    sync.Mutex
	wait  map[string]chan string
}

var reCallID = regexp.MustCompile(`(?mi)^(?:call-id|i)[ \t]*:[ \t]*(\S+)`)

func (s *sock) readLoop() {
	buf := make([]byte, 65535)
	for {
		n, err := s.c.Read(buf)
		if err != nil {
			return
		}
		msg := string(buf[:n])
		m := reCallID.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		s.mu.Lock()
		ch := s.wait[m[1]]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- msg:
			default:
			}
		}
	}
}

func randHex(n int) string { return sipua.RandHex(n) }

// exchange sends req and waits for a final response (>= 200), with UDP
// retransmissions at 500 ms, 1 s, 2 s.
func (s *sock) exchange(req string, ch chan string, deadline time.Time) (string, int) {
	rt := 0
	wait := 500 * time.Millisecond
	_, _ = s.c.WriteToUDP([]byte(req), s.raddr)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return "", rt
		}
		t := time.NewTimer(min(wait, left))
		select {
		case msg := <-ch:
			t.Stop()
			if code := status(msg); code >= 200 {
				return msg, rt
			}
		case <-t.C:
			if time.Until(deadline) <= 0 {
				return "", rt
			}
			rt++
			_, _ = s.c.WriteToUDP([]byte(req), s.raddr)
			wait = min(2*wait, 4*time.Second)
		}
	}
}

func status(msg string) int { return sipua.StatusOf(msg) }

func register(s *sock, u user, domain string, expires int, timeout time.Duration) (time.Duration, string, int, bool) {
	callID := randHex(10) + "@agents"
	ch := make(chan string, 8)
	s.mu.Lock()
	s.wait[callID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.wait, callID)
		s.mu.Unlock()
	}()
	la := s.c.LocalAddr().String()
	tag := randHex(6)
	build := func(cseq int, auth string) string {
		return sipua.Register{
			Transport: "UDP", Via: la, Branch: "z9hG4bK" + randHex(8), User: u.name, Domain: domain, CallID: callID, FromTag: tag,
			CSeq: cseq, Contact: "<sip:" + u.name + "@" + la + ">", Expires: expires, Auth: auth, Agent: "flood-bench-agent/1.0",
		}.String()
	}
	start := time.Now()
	deadline := start.Add(timeout)
	res, rt := s.exchange(build(1, ""), ch, deadline)
	if res == "" {
		return 0, "timeout", rt, false
	}
	if status(res) != 401 {
		return 0, strconv.Itoa(status(res)), rt, status(res) == 200
	}
	ch401, ok := pickMD5(res)
	if !ok {
		return 0, "no-md5", rt, false
	}
	auth := ch401.Authorization(u.name, u.pass, "REGISTER", "sip:"+domain)
	res, rt2 := s.exchange(build(2, auth), ch, deadline)
	rt += rt2
	if res == "" {
		return 0, "timeout", rt, false
	}
	code := status(res)
	return time.Since(start), strconv.Itoa(code), rt, code == 200
}

// pickMD5 returns the MD5 WWW-Authenticate challenge of a response.
func pickMD5(msg string) (sipua.Challenge, bool) {
	m, err := sipua.ParseMsg([]byte(msg))
	if err != nil {
		return sipua.Challenge{}, false
	}
	return sipua.PickChallenge(m.All("www-authenticate"), "MD5")
}
