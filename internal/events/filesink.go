package events

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// FileSink appends JSON lines to a file (mode 0600): one line per event
// or call record, each with the schema version "v". A line is written
// whole and the buffer flushed to the kernel after every batch, so a crash
// of the process loses nothing that Write returned for.
type FileSink struct {
	path string

	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

// OpenFileSink opens (creating) the log at path.
func OpenFileSink(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("events: open log %s: %w", path, err)
	}
	return &FileSink{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Name implements Sink.
func (s *FileSink) Name() string { return "file" }

// line is the encoding of one event: the schema version first.
type line struct {
	V int `json:"v"`
	*Event
}

type recordLine struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	*CallRecord
}

// Write implements Sink.
func (s *FileSink) Write(_ context.Context, b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	enc := json.NewEncoder(s.w)
	for i := range b.Events {
		if err := enc.Encode(line{SchemaVersion, &b.Events[i]}); err != nil {
			return fmt.Errorf("events: encode: %w", err)
		}
	}
	for i := range b.Records {
		if err := enc.Encode(recordLine{SchemaVersion, "call.record", &b.Records[i]}); err != nil {
			return fmt.Errorf("events: encode: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		// bufio keeps its first error forever: start clean, so the sink
		// recovers once the disk does (the retry may repeat lines; their
		// IDs tell them apart).
		s.w.Reset(s.f)
		return fmt.Errorf("events: write %s: %w", s.path, err)
	}
	return nil
}

// Close flushes and closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ferr := s.w.Flush()
	cerr := s.f.Close()
	if ferr != nil {
		return ferr
	}
	return cerr
}
