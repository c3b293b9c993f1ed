package app

import "net/netip"

var netipZero netip.AddrPort
