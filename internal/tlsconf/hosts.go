package tlsconf

import (
	"net"
	"net/netip"
	"slices"
	"strings"
)

// names is the set of subject alternative names a server certificate must
// carry.
type names struct {
	dns []string
	ips []netip.Addr
}

// wantedNames expands the domain and listen hosts into SANs. Wildcard hosts
// become every local interface address, because a phone may dial any of
// them. Link-local addresses are left out: they carry a zone that no
// certificate can name.
func wantedNames(domain string, hosts []string, ifaceAddrs func() ([]net.Addr, error)) (names, error) {
	var n names
	n.add("localhost")
	n.add("127.0.0.1")
	n.add("::1")
	if domain != "" {
		n.add(domain)
	}
	for _, h := range hosts {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.Trim(h, "[]")
		if h != "" && h != "0.0.0.0" && h != "::" {
			n.add(h)
			continue
		}
		addrs, err := ifaceAddrs()
		if err != nil {
			return names{}, err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && !ip.Unmap().IsLinkLocalUnicast() {
					n.add(ip.Unmap().String())
				}
			}
		}
	}
	slices.Sort(n.dns)
	slices.SortFunc(n.ips, func(a, b netip.Addr) int { return a.Compare(b) })
	return n, nil
}

func (n *names) add(h string) {
	if ip, err := netip.ParseAddr(h); err == nil {
		ip = ip.Unmap().WithZone("")
		if !slices.Contains(n.ips, ip) {
			n.ips = append(n.ips, ip)
		}
		return
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if !slices.Contains(n.dns, h) {
		n.dns = append(n.dns, h)
	}
}

// coveredBy reports whether every wanted name is in the certificate's SANs.
func (n names) coveredBy(dns []string, ips []net.IP) bool {
	for _, d := range n.dns {
		if !slices.ContainsFunc(dns, func(c string) bool { return strings.EqualFold(c, d) }) {
			return false
		}
	}
	for _, ip := range n.ips {
		if !slices.ContainsFunc(ips, func(c net.IP) bool { return c.Equal(net.IP(ip.AsSlice())) }) {
			return false
		}
	}
	return true
}

func (n names) netIPs() []net.IP {
	out := make([]net.IP, len(n.ips))
	for i, ip := range n.ips {
		out[i] = net.IP(ip.AsSlice())
	}
	return out
}
