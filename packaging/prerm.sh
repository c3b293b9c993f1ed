#!/bin/sh
# Debian prerm of veilig: stop and disable the service on removal (an
# upgrade restarts it in postinst instead). /var/lib/veilig is kept, also
# on purge: it holds the extensions, records and keys.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now veilig.service || true
fi
exit 0
