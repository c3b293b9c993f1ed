package tollfraud

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		dialled, country string
		e164, region     string
		typ              NumberType
		special          Special
		eu, national     bool
	}{
		// Netherlands, national formats
		{"0612345678", "NL", "+31612345678", "NL", Mobile, NotSpecial, true, true},
		{"06-12 34 56 78", "NL", "+31612345678", "NL", Mobile, NotSpecial, true, true},
		{"020 123 4567", "NL", "+31201234567", "NL", Fixed, NotSpecial, true, true},
		{"(020) 123-4567", "NL", "+31201234567", "NL", Fixed, NotSpecial, true, true},
		{"0900 1234567", "NL", "+319001234567", "NL", PremiumRate, NotSpecial, true, true},
		{"0800 1234567", "NL", "+318001234567", "NL", TollFree, NotSpecial, true, true},
		{"084 1234567", "NL", "+31841234567", "NL", UAN, NotSpecial, true, true},
		// International prefixes: 00 from NL, 011 from US, +
		{"0049 30 12345678", "NL", "+493012345678", "DE", Fixed, NotSpecial, true, false},
		{"+49 30 12345678", "NL", "+493012345678", "DE", Fixed, NotSpecial, true, false},
		{"+49 900 1234567", "NL", "+499001234567", "DE", PremiumRate, NotSpecial, true, false},
		{"+44 7400 123456", "NL", "+447400123456", "GB", Mobile, NotSpecial, false, false},
		{"011 44 20 7946 0958", "US", "+442079460958", "GB", Fixed, NotSpecial, false, false},
		{"+44 909 876 5432", "GB", "+449098765432", "GB", PremiumRate, NotSpecial, false, true},
		{"+44 70 1234 5678", "GB", "+447012345678", "GB", Personal, NotSpecial, false, true},
		{"+1 212 555 0123", "NL", "+12125550123", "US", FixedOrMobile, NotSpecial, false, false},
		{"(212) 555-0123", "US", "+12125550123", "US", FixedOrMobile, NotSpecial, false, true},
		{"+1 416 555 0199", "US", "+14165550199", "CA", FixedOrMobile, NotSpecial, false, false},
		{"+1 876 555 0199", "US", "+18765550199", "JM", Mobile, NotSpecial, false, false},
		{"+33 1 23 45 67 89", "NL", "+33123456789", "FR", Fixed, NotSpecial, true, false},
		{"06 12 34 56 78", "FR", "+33612345678", "FR", Mobile, NotSpecial, true, true},
		{"+32 2 555 12 12", "NL", "+3225551212", "BE", Fixed, NotSpecial, true, false},
		{"0470 12 34 56", "BE", "+32470123456", "BE", Mobile, NotSpecial, true, true},
		{"+358 18 12345", "NL", "+3581812345", "AX", Fixed, NotSpecial, true, false},
		{"+53 5 1234567", "NL", "+5351234567", "CU", Mobile, NotSpecial, false, false},
		// Non-geographic
		{"+882 16 1234 5678", "NL", "+8821612345678", NonGeographic, VoIP, Satellite, false, false},
		{"+882 13 1234 5678", "NL", "+8821312345678", NonGeographic, Unknown, Satellite, false, false},
		{"+870 773 123 456", "NL", "+870773123456", NonGeographic, Mobile, Satellite, false, false},
		{"00881 6 3123 4567", "NL", "+881631234567", NonGeographic, Mobile, Satellite, false, false},
		{"+883 5100 1234 5678", "NL", "+883510012345678", NonGeographic, VoIP, InternationalNetwork, false, false},
		{"+979 123456789", "NL", "+979123456789", NonGeographic, PremiumRate, NotSpecial, false, false},
		{"+800 1234 5678", "NL", "+80012345678", NonGeographic, TollFree, NotSpecial, false, false},
		// Emergency short codes, by the default country's plan
		{"112", "NL", "112", "NL", Unknown, Emergency, true, true},
		{"911", "NL", "911", "NL", Unknown, Emergency, true, true},
		{"112", "DE", "112", "DE", Unknown, Emergency, true, true},
		{"911", "US", "911", "US", Unknown, Emergency, false, true},
		{"999", "GB", "999", "GB", Unknown, Emergency, false, true},
		{"000", "AU", "000", "AU", Unknown, Emergency, false, true},
	}
	for _, tt := range tests {
		got, err := Classify(tt.dialled, tt.country)
		if err != nil {
			t.Errorf("Classify(%q, %s): %v", tt.dialled, tt.country, err)
			continue
		}
		want := Destination{E164: tt.e164, Country: tt.region, Type: tt.typ, Special: tt.special, EU: tt.eu, National: tt.national}
		got.CountryCode = 0
		if got != want {
			t.Errorf("Classify(%q, %s)\n got %+v\nwant %+v", tt.dialled, tt.country, got, want)
		}
	}
}

func TestClassifyRejects(t *testing.T) {
	tests := []struct {
		dialled, country string
		want             error
	}{
		{"", "NL", ErrNotNumber},
		{"hello", "NL", ErrNotNumber},
		{"sip:1001@example.com", "NL", ErrNotNumber},
		{"+31612345678;ext=1", "NL", ErrNotNumber},
		{"*31#0612345678", "NL", ErrNotNumber},
		{"0612345678#", "NL", ErrNotNumber},
		{"1-800-FLOWERS", "US", ErrNotNumber},
		{"31+612345678", "NL", ErrNotNumber},
		{"++31612345678", "NL", ErrNotNumber},
		{"0612345678901234567890123456789012345678901", "NL", ErrNotNumber},
		{"12", "NL", ErrInvalidNumber},
		{"1233", "NL", ErrInvalidNumber}, // a short code, but not an emergency one
		{"999", "NL", ErrInvalidNumber},  // emergency in GB, not in NL
		{"+31 6 1234", "NL", ErrInvalidNumber},
		{"+1 911", "US", ErrInvalidNumber}, // emergency codes are dialled without a country code
	}
	for _, tt := range tests {
		if _, err := Classify(tt.dialled, tt.country); !errors.Is(err, tt.want) {
			t.Errorf("Classify(%q, %s) = %v, want %v", tt.dialled, tt.country, err, tt.want)
		}
	}
	if _, err := Classify("0612345678", "XX"); err == nil {
		t.Error("unknown default country accepted")
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"0612345678", "+882 16 1234 5678", "112", "00 49 (30) 1234-5678", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Classify(s, "NL")
		if err != nil {
			return
		}
		if d.E164 == "" || d.Country == "" || d.Special == "" || d.Type == "" {
			t.Fatalf("Classify(%q) = %+v: incomplete", s, d)
		}
		if d.Special != Emergency && d.E164[0] != '+' {
			t.Fatalf("Classify(%q) = %q: not E.164", s, d.E164)
		}
	})
}

// The fast path must agree with phonenumbers.Parse wherever it answers.
func TestFastParseAgreesWithParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := map[string][]string{
		"NL": {"0", "00", "+", "06", "020", "0900", "0800", "+31", "0031", "+44", "+1"},
		"DE": {"0", "00", "+", "030", "015", "+49"},
		"GB": {"0", "00", "+", "07", "020", "+44", "0044"},
		"US": {"1", "011", "+", "+1", "1212"},
		"IT": {"0", "00", "+39", "3"},
		"FR": {"0", "00", "+33", "06"},
		"AR": {"0", "00", "+54", "011", "+549"},
		"BR": {"0", "00", "+55", "0021"},
		"AU": {"0", "0011", "+61", "04"},
		"RU": {"8", "810", "+7", "89"},
		"JP": {"0", "010", "+81"},
		"IN": {"0", "00", "+91", "9"},
		"BE": {"0", "00", "+32", "04"},
	}
	agreed := 0
	for region, ps := range prefixes {
		for range 2000 {
			s := ps[rng.IntN(len(ps))]
			for range 6 + rng.IntN(8) {
				s += string(rune('0' + rng.IntN(10)))
			}
			digits, plus, _ := scan(s)
			n, ok := fastParse(digits, plus, region)
			if !ok {
				continue
			}
			fast, ok := describe(n, region)
			if !ok {
				continue
			}
			p, err := phonenumbers.Parse(s, region)
			if err != nil {
				t.Errorf("%s %q: fast %+v, Parse: %v", region, s, fast, err)
				continue
			}
			slow, ok := describe(p, region)
			if !ok || slow != fast {
				t.Errorf("%s %q: fast %+v, Parse %+v", region, s, fast, slow)
			}
			agreed++
		}
	}
	if agreed < 1000 {
		t.Errorf("only %d numbers took the fast path", agreed)
	}
}
