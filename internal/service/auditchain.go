package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/veilig/veilig/internal/auditlog"
	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
)

// chain fills e's Seq, PrevHash and Hash to follow head (the zero entry
// when the log is empty), with the auditlog package's encoding.
func chain(head store.AuditEntry, e store.AuditEntry) (store.AuditEntry, error) {
	var prev *auditlog.Entry
	if head.Seq > 0 {
		p, err := toLog(head)
		if err != nil {
			return store.AuditEntry{}, err
		}
		prev = &p
	}
	le, err := toLog(e)
	if err != nil {
		return store.AuditEntry{}, err
	}
	next, err := auditlog.Next(prev, le)
	if err != nil {
		return store.AuditEntry{}, err
	}
	return fromLog(next), nil
}

func toLog(e store.AuditEntry) (auditlog.Entry, error) {
	le := auditlog.Entry{Seq: uint64(e.Seq), Time: e.Time, Actor: e.Actor, Role: e.Role, Channel: auditlog.Channel(e.Channel),
		Source: e.Source, Action: e.Action, Target: e.Target}
	if e.Before != "" {
		le.Before = json.RawMessage(e.Before)
	}
	if e.After != "" {
		le.After = json.RawMessage(e.After)
	}
	var err error
	if e.PrevHash != "" {
		if le.PrevHash, err = auditlog.ParseHash(e.PrevHash); err != nil {
			return le, fmt.Errorf("audit entry %d: prev hash: %w", e.Seq, err)
		}
	}
	if e.Hash != "" {
		if le.Hash, err = auditlog.ParseHash(e.Hash); err != nil {
			return le, fmt.Errorf("audit entry %d: hash: %w", e.Seq, err)
		}
	}
	return le, nil
}

func fromLog(le auditlog.Entry) store.AuditEntry {
	return store.AuditEntry{Seq: int64(le.Seq), Time: le.Time, Actor: le.Actor, Role: le.Role, Channel: string(le.Channel),
		Source: le.Source, Action: le.Action, Target: le.Target, Before: string(le.Before), After: string(le.After),
		PrevHash: le.PrevHash.String(), Hash: le.Hash.String()}
}

// signer signs audit checkpoints with a key derived from the data key, so
// only this installation can make one and anyone with its public key
// (printed by `veilig auditlog checkpoint`) can check one.
func (s *Service) signer() (*auditlog.Signer, error) {
	return auditlog.NewSigner(s.d.Key.Derive("audit-checkpoint"))
}

// VerifyRequest checks the audit log, against a checkpoint kept elsewhere
// when one is given (a signed note, as `veilig auditlog checkpoint` or the
// audit.checkpoint event carries it).
type VerifyRequest struct {
	Checkpoint string `json:"checkpoint,omitempty"`
}

// VerifyResult says whether the log is intact.
type VerifyResult struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	Head    string `json:"head,omitempty"`
	// FirstBad is the first entry found wrong (0 when the fault is the
	// log's end, a deleted tail), with what is wrong.
	FirstBad int64  `json:"first_bad,omitempty"`
	Problem  string `json:"problem,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// CheckpointResult is a signed statement of the log's length and head.
type CheckpointResult struct {
	Note        string `json:"note"`
	VerifierKey string `json:"verifier_key"`
	Entries     int64  `json:"entries"`
}

// Audit log integrity operations.
var (
	OpAuditVerify     = define("audit.verify", PermAuditRead, false, "check the audit log's hash chain (and a checkpoint kept elsewhere)", (*Service).auditVerify)
	OpAuditCheckpoint = define("audit.checkpoint", PermAuditRead, false, "a signed checkpoint of the audit log's length and head", (*Service).auditCheckpoint)
)

func (s *Service) auditEntries(ctx context.Context) auditlog.Source {
	return func(yield func(auditlog.Entry, error) bool) {
		var after int64
		for {
			page, err := s.d.Store.ScanAudit(ctx, after, 1000)
			if err != nil {
				yield(auditlog.Entry{}, err)
				return
			}
			for _, e := range page {
				le, err := toLog(e)
				if !yield(le, err) || err != nil {
					return
				}
				after = e.Seq
			}
			if len(page) < 1000 {
				return
			}
		}
	}
}

func (s *Service) auditVerify(ctx context.Context, _ Actor, req VerifyRequest) (VerifyResult, error) {
	var cp *auditlog.Checkpoint
	if req.Checkpoint != "" {
		sg, err := s.signer()
		if err != nil {
			return VerifyResult{}, &Error{Kind: Internal, Message: err.Error()}
		}
		if cp, err = auditlog.OpenCheckpoint([]byte(req.Checkpoint), sg.Verifier()); err != nil {
			return VerifyResult{OK: false, Problem: "checkpoint", Detail: "the checkpoint is not one this installation signed: " + err.Error()}, nil
		}
	}
	head, err := auditlog.Verify(s.auditEntries(ctx), cp)
	res := VerifyResult{Entries: int64(head.Count), OK: err == nil}
	if !head.Hash.IsZero() {
		res.Head = head.Hash.String()
	}
	var ve *auditlog.VerifyError
	switch {
	case err == nil:
	case errors.As(err, &ve):
		res.FirstBad, res.Problem, res.Detail = int64(ve.Seq), ve.Kind.Error(), ve.Detail
	default:
		return VerifyResult{}, storeErr("read the audit log", err)
	}
	return res, nil
}

func (s *Service) auditCheckpoint(ctx context.Context, _ Actor, _ struct{}) (CheckpointResult, error) {
	sg, err := s.signer()
	if err != nil {
		return CheckpointResult{}, &Error{Kind: Internal, Message: err.Error()}
	}
	head, err := auditlog.Verify(s.auditEntries(ctx), nil)
	if err != nil {
		return CheckpointResult{}, &Error{Kind: Conflict, Message: "the audit log does not verify; no checkpoint signed: " + err.Error()}
	}
	note, err := sg.SignCheckpoint(head.Checkpoint(s.d.Now()))
	if err != nil {
		return CheckpointResult{}, &Error{Kind: Internal, Message: err.Error()}
	}
	return CheckpointResult{Note: string(note), VerifierKey: sg.VerifierKey(), Entries: int64(head.Count)}, nil
}

// RunCheckpoints emits a signed checkpoint as an audit.checkpoint event
// every interval while the log has grown, so the sinks carry proof of its
// length off the machine: a tail deleted later is then detectable.
func (s *Service) RunCheckpoints(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var last int64 = -1
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		head, err := s.d.Store.AuditHead(ctx)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil || head.Seq == last {
			continue
		}
		cp, err := s.auditCheckpoint(ctx, SystemActor, struct{}{})
		if err != nil {
			s.d.Log.Error("audit checkpoint", "err", err)
			continue
		}
		last = head.Seq
		s.d.Events.Emit(events.New(events.AuditCheckpoint, netip.AddrPort{}, "", fmt.Sprintf("audit log checkpoint: %d entries", cp.Entries),
			"entries", fmt.Sprint(cp.Entries), "note", cp.Note, "verifier_key", cp.VerifierKey))
	}
}
