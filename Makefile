# Veilig: the two commands a newcomer needs are `make run` and `make test`.
GO ?= go
BIN := bin/veilig

.PHONY: build run test unit e2e vet bench-peers deps

build:
	$(GO) build -o $(BIN) ./cmd/veilig

# Start the server on its embedded defaults (data in ./veilig-data).
run: build
	./$(BIN) serve

# Every test: unit tests with the race detector, then the end-to-end
# interop tests against real peers (sipp, baresip, tshark) on loopback.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./internal/... ./cmd/...
	$(GO) test -count=1 -run '^TestIdleConnectionMemory$$' ./internal/sipedge # memory, not under -race
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime 300000x ./internal/sipedge/sanity
	$(GO) test -count=1 -timeout 25m ./test/...

vet:
	@test -z "$$(gofmt -l cmd internal test)" || (gofmt -l cmd internal test; echo "gofmt needed"; exit 1)
	$(GO) vet ./...

# Install the Debian packages the tests drive (needs root).
deps:
	bash .ci/deps.sh

# Kamailio vs Veilig under the same sipp load (see bench/README.md).
bench-peers: build
	bash bench/peers.sh
