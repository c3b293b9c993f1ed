package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/veilig/veilig/internal/config"
	"github.com/veilig/veilig/internal/media"
)

// newRelay builds the media relay from config and says where it is. Its bind address defaults to
// the SIP TLS host; a wildcard needs an address to write into SDP, taken
// from media.advertise, sip.advertise_host or the first non-loopback
// interface address.
func newRelay(cfg *config.Config, onEvent func(media.Event), log *slog.Logger) (*media.Relay, string, error) {
	lo, hi, err := cfg.Media.Ports()
	if err != nil {
		return nil, "", fmt.Errorf("media.port_range: %w", err)
	}
	addr := netip.IPv4Unspecified()
	if cfg.Media.Address != "" {
		addr, _ = netip.ParseAddr(cfg.Media.Address)
	} else if h, _, err := net.SplitHostPort(cfg.SIP.TLSListen); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			addr = a
		}
	}
	adv := cfg.Media.Advertise
	if adv == "" && addr.IsUnspecified() {
		adv = cfg.SIP.AdvertiseHost
		if adv == "" {
			adv = firstLocalAddr()
			log.Warn("media.advertise not set: SDP will name this address; set media.advertise if devices reach Veilig through NAT", "address", adv)
		}
	}
	r, err := media.New(media.Options{
		Address: addr, Advertise: adv, PortMin: lo, PortMax: hi, Timeout: cfg.Media.Timeout,
		Codecs: cfg.Media.Codecs,
		Logger: log, OnEvent: onEvent,
	})
	if adv == "" {
		adv = addr.String()
	}
	return r, fmt.Sprintf("SRTP relay on %s ports %d-%d, named in SDP as %s", addr, lo, hi, adv), err
}

func firstLocalAddr() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
