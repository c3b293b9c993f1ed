# Veilig: the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
BIN := bin/veilig

.PHONY: build run test unit e2e vet bench-peers deps install uninstall deb

build:
	$(GO) build -o $(BIN) ./cmd/veilig

# Start the server on its embedded defaults (data in ./veilig-data).
run: build
	./$(BIN) serve

# Every test: unit tests with the race detector, then the end-to-end
# interop tests against real peers (sipp, baresip, tshark) on loopback.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./internal/... ./cmd/... ./bench/...
	$(GO) test -count=1 -run '^TestIdleConnectionMemory$$' ./internal/sipedge # memory, not under -race
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime 300000x ./internal/sipedge/sanity
	$(GO) test -count=1 -timeout 25m ./test/...

vet:
	@test -z "$$(gofmt -l cmd internal test bench)" || (gofmt -l cmd internal test bench; echo "gofmt needed"; exit 1)
	$(GO) vet ./...

# Install the Debian packages the tests drive (needs root).
deps:
	bash .ci/deps.sh

# Kamailio vs Veilig under the same sipp load (see bench/README.md).
bench-peers: build
	bash bench/peers.sh

# ---- production install (see README, "Production install") ----
# make install [PREFIX=/usr/local] [DESTDIR=/staging/root]: the binary, the
# systemd unit (ExecStart pointed at BINDIR), the sysusers.d entry for the
# veilig user, and /etc/veilig/veilig.yaml unless one is already there.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR ?= $(PREFIX)/share/doc/veilig
SYSCONFDIR ?= /etc

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/veilig
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/veilig
	sed 's|/usr/bin/veilig|$(BINDIR)/veilig|g' packaging/veilig.service > $(DESTDIR)$(UNITDIR)/veilig.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/veilig.service
	install -m 0644 packaging/veilig.sysusers $(DESTDIR)$(SYSUSERSDIR)/veilig.conf
	install -m 0644 README.md docs/softphones.md $(DESTDIR)$(DOCDIR)/
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/veilig/veilig.yaml ]; then \
		echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/veilig/veilig.yaml"; \
	else \
		install -m 0644 packaging/veilig.yaml $(DESTDIR)$(SYSCONFDIR)/veilig/veilig.yaml; \
	fi

# Removes what install put there except /etc/veilig and /var/lib/veilig
# (configuration, extensions, records and keys stay).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/veilig $(DESTDIR)$(UNITDIR)/veilig.service $(DESTDIR)$(SYSUSERSDIR)/veilig.conf
	rm -rf $(DESTDIR)$(DOCDIR)

# make deb: out/veilig_<version>_<arch>.deb, built by nfpm (pinned; go run
# fetches it through the Go module proxy on first use).
NFPM ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
VERSION ?= $(shell sed -n 's/^var Version = "\(.*\)"/\1/p' internal/app/app.go)
GOARCH ?= $(shell $(GO) env GOARCH)

deb:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X github.com/veilig/veilig/internal/app.Version=$(VERSION)" -o $(BIN) ./cmd/veilig
	mkdir -p out
	VEILIG_VERSION=$(VERSION) GOARCH=$(GOARCH) $(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target out/
