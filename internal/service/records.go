package service

import (
	"context"
	"time"

	"github.com/veilig/veilig/internal/events"
	"github.com/veilig/veilig/internal/store"
)

// maxPage bounds one page of events, records or audit entries.
const maxPage = 10000

// EventsRequest filters events; Limit defaults to 50, at most 10,000.
type EventsRequest struct {
	Type     string    `json:"type,omitempty"` // exact, or a prefix ending in "."
	Account  string    `json:"account,omitempty"`
	Source   string    `json:"source,omitempty"`
	Severity string    `json:"severity,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Until    time.Time `json:"until,omitzero"`
	BeforeID int64     `json:"before_id,omitempty"`
	Limit    int       `json:"limit,omitempty"`
}

// EventsPage is one page of events, newest first; NextBeforeID continues.
type EventsPage struct {
	Events       []events.Event `json:"events"`
	NextBeforeID int64          `json:"next_before_id,omitempty"`
}

// RecordsRequest filters call records; Limit defaults to 50.
type RecordsRequest struct {
	Party       string    `json:"party,omitempty"`
	Disposition string    `json:"disposition,omitempty"`
	Outbound    bool      `json:"outbound,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Until       time.Time `json:"until,omitzero"`
	Offset      int       `json:"offset,omitempty"`
	Limit       int       `json:"limit,omitempty"`
}

// Query operations.
var (
	OpEvents  = define("event.list", PermEventsRead, false, "security and operational events, newest first", (*Service).events)
	OpRecords = define("record.list", PermRecordsRead, false, "call records, newest first", (*Service).records)
	OpKinds   = define("event.kinds", PermEventsRead, false, "the catalogue of event types", (*Service).kinds)
)

func page(limit int) (int, error) {
	switch {
	case limit == 0:
		return 50, nil
	case limit < 0 || limit > maxPage:
		return 0, invalid("limit", "limit must be between 1 and %d", maxPage)
	}
	return limit, nil
}

func (s *Service) events(ctx context.Context, _ Actor, req EventsRequest) (EventsPage, error) {
	limit, err := page(req.Limit)
	if err != nil {
		return EventsPage{}, err
	}
	es, err := s.d.Store.ListEvents(ctx, store.EventFilter{Type: req.Type, Account: req.Account, Source: req.Source,
		Severity: req.Severity, Since: req.Since, Until: req.Until, BeforeID: req.BeforeID, Limit: limit})
	if err != nil {
		if req.Source != "" {
			return EventsPage{}, invalid("source", "%v", err)
		}
		return EventsPage{}, storeErr("list events", err)
	}
	p := EventsPage{Events: make([]events.Event, 0, len(es))}
	for _, e := range es {
		p.Events = append(p.Events, events.FromStore(e))
	}
	if len(es) == limit {
		p.NextBeforeID = es[len(es)-1].ID
	}
	return p, nil
}

func (s *Service) records(ctx context.Context, a Actor, req RecordsRequest) ([]events.CallRecord, error) {
	limit, err := page(req.Limit)
	if err != nil {
		return nil, err
	}
	party := req.Party
	if only := scoped(a); only != "" {
		party = only
	}
	rs, err := s.d.Store.ListCallRecords(ctx, store.RecordFilter{Party: party, Disposition: req.Disposition, Outbound: req.Outbound,
		Since: req.Since, Until: req.Until, Offset: req.Offset, Limit: limit})
	if err != nil {
		return nil, storeErr("list call records", err)
	}
	out := make([]events.CallRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, events.RecordFromStore(r))
	}
	return out, nil
}

func (s *Service) kinds(context.Context, Actor, struct{}) ([]*events.Kind, error) {
	return events.Catalogue(), nil
}
