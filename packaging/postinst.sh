#!/bin/sh
# Debian postinst of veilig: the system user, its state directory, and a
# restart on upgrade. A fresh install is not started: set sip.domain in
# /etc/veilig/veilig.yaml first, then: systemctl enable --now veilig
set -e
if [ "$1" = configure ]; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/veilig.conf
	elif ! getent passwd veilig >/dev/null; then
		adduser --system --group --home /var/lib/veilig --no-create-home \
			--shell /usr/sbin/nologin --gecos "Veilig VoIP server" veilig
	fi
	install -d -o veilig -g veilig -m 0700 /var/lib/veilig
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		if [ -n "$2" ]; then
			systemctl try-restart veilig.service || true
		fi
	fi
fi
exit 0
