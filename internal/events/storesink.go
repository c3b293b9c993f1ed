package events

import (
	"context"
	"net/netip"

	"github.com/veilig/veilig/internal/store"
)

// StoreSink writes events and call records to the store.
type StoreSink struct {
	St interface {
		store.Events
		store.CallRecords
	}
}

// Name implements Sink.
func (StoreSink) Name() string { return "store" }

// Write implements Sink. A call record whose ID is already stored is a
// retry of a batch that did commit: not an error worth retrying again.
func (s StoreSink) Write(ctx context.Context, b Batch) error {
	if len(b.Events) > 0 {
		if err := s.St.InsertEvents(ctx, toStoreEvents(b.Events)); err != nil {
			return err
		}
	}
	if len(b.Records) > 0 {
		if err := s.St.InsertCallRecords(ctx, toStoreRecords(b.Records)); err != nil {
			return err
		}
	}
	return nil
}

func toStoreEvents(evs []Event) []store.Event {
	out := make([]store.Event, len(evs))
	for i, e := range evs {
		out[i] = store.Event{UID: e.ID, Time: e.Time, Type: e.Type, Severity: string(e.Severity), Source: e.Source, Account: e.Account, Message: e.Message, Fields: e.Fields}
	}
	return out
}

// FromStore turns a stored event back into an Event.
func FromStore(e store.Event) Event {
	return Event{ID: e.UID, Time: e.Time, Type: e.Type, Severity: Severity(e.Severity), Source: e.Source, Account: e.Account, Message: e.Message, Fields: e.Fields}
}

func toStoreRecords(rs []CallRecord) []store.CallRecord {
	out := make([]store.CallRecord, len(rs))
	for i, r := range rs {
		src, _ := netip.ParseAddrPort(r.Source)
		out[i] = store.CallRecord{
			ID: r.ID, From: r.From, To: r.To, Source: src, StartedAt: r.StartedAt, AnsweredAt: r.AnsweredAt,
			EndedAt: r.EndedAt, Disposition: r.Disposition, Cause: r.Cause, CallerMedia: r.CallerMedia,
			CalleeMedia: r.CalleeMedia, MediaInClear: r.MediaInClear,
			E164: r.E164, Country: r.Country, Class: r.Class, EstimatedCost: r.EstimatedCost, Trunk: r.Trunk, Fraud: r.Fraud,
		}
	}
	return out
}

// RecordFromStore turns a stored call record back into a CallRecord.
func RecordFromStore(r store.CallRecord) CallRecord {
	src := ""
	if r.Source.IsValid() {
		src = r.Source.String()
	}
	return CallRecord{
		ID: r.ID, From: r.From, To: r.To, Source: src, StartedAt: r.StartedAt, AnsweredAt: r.AnsweredAt,
		EndedAt: r.EndedAt, Disposition: r.Disposition, Cause: r.Cause, CallerMedia: r.CallerMedia,
		CalleeMedia: r.CalleeMedia, MediaInClear: r.MediaInClear,
		E164: r.E164, Country: r.Country, Class: r.Class, EstimatedCost: r.EstimatedCost, Trunk: r.Trunk, Fraud: r.Fraud,
	}
}
