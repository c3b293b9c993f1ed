package service

import (
	"context"
	"time"

	"github.com/veilig/veilig/internal/store"
)

// AuditRequest filters the audit log.
type AuditRequest struct {
	Actor     string    `json:"actor,omitempty"`
	Action    string    `json:"action,omitempty"`
	Target    string    `json:"target,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	BeforeSeq int64     `json:"before_seq,omitempty"`
	Limit     int       `json:"limit,omitempty"`
}

// OpAudit lists audit entries.
var OpAudit = define("audit.list", PermAuditRead, false, "the audit log of management changes, newest first", (*Service).audit)

func (s *Service) audit(ctx context.Context, _ Actor, req AuditRequest) ([]store.AuditEntry, error) {
	limit, err := page(req.Limit)
	if err != nil {
		return nil, err
	}
	es, err := s.d.Store.ListAudit(ctx, store.AuditFilter{Actor: req.Actor, Action: req.Action, Target: req.Target,
		Since: req.Since, BeforeSeq: req.BeforeSeq, Limit: limit})
	if err != nil {
		return nil, storeErr("list audit", err)
	}
	return es, nil
}
