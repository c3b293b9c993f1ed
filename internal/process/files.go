package process

import (
	"fmt"
	"syscall"

	"github.com/veilig/veilig/internal/config"
)

// fdReserve is what the connection limit leaves of the open-file limit
// for everything else: the database and its WAL, the event log, the
// listeners (SIP, metrics, control socket), trunk connections and
// certificate reloads.
const fdReserve = 128

// RaiseFileLimit lifts the soft open-file limit to the hard one (the
// soft default of 1024 is far below what a contact centre's phones need)
// and returns the limit in force.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read the open-file limit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			rl = want
		}
	}
	return rl.Cur, nil
}

// ConnectionLimit is how many SIP stream connections may be held under
// an open-file limit of files: sip.max_connections when set (refused when
// it does not fit), else the limit less the reserve and a share for the
// media relay (two sockets per call leg; at most a quarter of the files
// or the whole port range, whichever is smaller).
func ConnectionLimit(cfg *config.Config, files uint64) (limit, reserve int, err error) {
	mediaShare := int(files / 4)
	if lo, hi, perr := cfg.Media.Ports(); perr == nil && hi-lo+1 < mediaShare {
		mediaShare = hi - lo + 1
	}
	reserve = fdReserve + mediaShare
	avail := int(min(files, 1<<31)) - reserve
	if cfg.SIP.MaxConnections > 0 {
		if cfg.SIP.MaxConnections > int(min(files, 1<<31))-fdReserve {
			return 0, reserve, fmt.Errorf("sip.max_connections %d does not fit the open-file limit %d less %d for the database, logs and listeners: raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or lower sip.max_connections",
				cfg.SIP.MaxConnections, files, fdReserve)
		}
		return cfg.SIP.MaxConnections, reserve, nil
	}
	if avail < 64 {
		return 0, reserve, fmt.Errorf("the open-file limit %d leaves %d SIP connections after %d for the database, logs, listeners and media: raise it (LimitNOFILE= in the systemd unit, ulimit -n) to at least %d",
			files, max(avail, 0), reserve, reserve+64)
	}
	return avail, reserve, nil
}
