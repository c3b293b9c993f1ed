package policy

import "net/netip"

// prefixes is a small CIDR list. A linear scan beats a trie for the
// handful of networks an operator writes down.
type prefixes []netip.Prefix

func newPrefixes(lists ...[]netip.Prefix) prefixes {
	var out prefixes
	for _, l := range lists {
		for _, p := range l {
			out = append(out, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
		}
	}
	return out
}

// unmappedBits converts a ::ffff:a.b.c.d/n prefix to its IPv4 length, so
// that it matches the unmapped addresses the engine works with.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

func (ps prefixes) contains(a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// containsUnmapped is contains for a list that was not built by
// newPrefixes (an account's networks, as the edge hands them over).
func (ps prefixes) containsUnmapped(a netip.Addr) bool {
	for _, p := range ps {
		if netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Contains(a) {
			return true
		}
	}
	return false
}
