package tollfraud

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// NumberType is the kind of line a number reaches, as the numbering plan
// (libphonenumber metadata) says. Rates and blocking rules key on it.
type NumberType string

// Number types, one per libphonenumber PhoneNumberType.
const (
	Fixed         NumberType = "fixed"
	Mobile        NumberType = "mobile"
	FixedOrMobile NumberType = "fixed_or_mobile" // plans that cannot tell them apart (NANP)
	TollFree      NumberType = "toll_free"
	PremiumRate   NumberType = "premium_rate"
	SharedCost    NumberType = "shared_cost"
	VoIP          NumberType = "voip"
	Personal      NumberType = "personal"
	Pager         NumberType = "pager"
	UAN           NumberType = "uan"
	Voicemail     NumberType = "voicemail"
	Unknown       NumberType = "unknown"
)

var numberTypes = [...]NumberType{
	phonenumbers.FIXED_LINE:           Fixed,
	phonenumbers.MOBILE:               Mobile,
	phonenumbers.FIXED_LINE_OR_MOBILE: FixedOrMobile,
	phonenumbers.TOLL_FREE:            TollFree,
	phonenumbers.PREMIUM_RATE:         PremiumRate,
	phonenumbers.SHARED_COST:          SharedCost,
	phonenumbers.VOIP:                 VoIP,
	phonenumbers.PERSONAL_NUMBER:      Personal,
	phonenumbers.PAGER:                Pager,
	phonenumbers.UAN:                  UAN,
	phonenumbers.VOICEMAIL:            Voicemail,
	phonenumbers.UNKNOWN:              Unknown,
}

func (t NumberType) valid() bool {
	for _, k := range numberTypes {
		if k == t {
			return true
		}
	}
	return false
}

// Special marks destinations that the guard treats apart from their
// country and type: emergency numbers are always connected, satellite and
// international-network ranges are refused unless explicitly allowed.
type Special string

// Special destinations.
const (
	NotSpecial           Special = "none"
	Emergency            Special = "emergency"
	Satellite            Special = "satellite"             // +870 Inmarsat, +881 GMSS, +882 13/16 Emsat/Thuraya
	InternationalNetwork Special = "international_network" // the rest of +882 and +883
)

// NonGeographic is the Country of numbers that belong to no country
// (+800, +808, +870, +881, +882, +883, +979), libphonenumber's "001".
const NonGeographic = "001"

// Destination is a classified dialled number.
type Destination struct {
	// E164 is the normalised number, "+31612345678". For an emergency
	// short code it is the digits as dialled ("112"), which is what the
	// trunk must receive. Route this value, never the raw dialled string,
	// so that what was checked is what is dialled.
	E164 string `json:"e164"`
	// Country is the ISO 3166-1 alpha-2 region the number belongs to
	// ("NL", "GG", "JM"), or NonGeographic.
	Country     string     `json:"country"`
	CountryCode int        `json:"country_code"`
	Type        NumberType `json:"type"`
	Special     Special    `json:"special"`
	// EU is true for the 27 member states and the regions with their own
	// region code that are part of the Union (Åland, the outermost regions).
	EU bool `json:"eu"`
	// National is true when Country is the tenant's default country.
	National bool `json:"national"`
}

// Classification errors. Both mean the guard cannot say where a call
// would go, so it is refused: an unclassifiable number is how fraud slips
// past prefix lists.
var (
	ErrNotNumber     = errors.New("not a phone number")
	ErrInvalidNumber = errors.New("not a valid number in any numbering plan")
)

// maxDialled bounds the input: nothing longer is a phone number, and the
// parser's cost grows with length.
const maxDialled = 40

// maxEmergencyDigits bounds the emergency lookup to short codes, which
// keeps the cost of the common case (a full number) down.
const maxEmergencyDigits = 6

// eu lists the EU member states plus the parts of the Union that
// libphonenumber gives a region code of their own.
var eu = map[string]bool{
	"AT": true, "BE": true, "BG": true, "HR": true, "CY": true, "CZ": true,
	"DK": true, "EE": true, "FI": true, "FR": true, "DE": true, "GR": true,
	"HU": true, "IE": true, "IT": true, "LV": true, "LT": true, "LU": true,
	"MT": true, "NL": true, "PL": true, "PT": true, "RO": true, "SK": true,
	"SI": true, "ES": true, "SE": true,
	// Åland (FI) and the French outermost regions.
	"AX": true, "GF": true, "GP": true, "MQ": true, "RE": true, "YT": true, "MF": true,
}

// Classify normalises dialled to E.164 using defaultCountry (ISO 3166-1,
// "NL") for national formats and classifies it. It accepts digits, one
// leading '+', and the separators " -.()/"; anything else (letters, '*',
// '#', URI parameters) is ErrNotNumber, because a phone would not send it
// and a carrier might act on it. Emergency short codes are recognised
// with the default country's plan (112 in NL, 911 and 112 in US, 000 in
// AU). Numbers in non-geographic satellite and network ranges are
// classified even when the plan does not know the range, so they cannot
// dodge the block by being obscure. Classify is pure and safe for
// concurrent use.
func Classify(dialled, defaultCountry string) (Destination, error) {
	if phonenumbers.GetCountryCodeForRegion(defaultCountry) == 0 {
		return Destination{}, fmt.Errorf("tollfraud: classify: unknown default country %q", defaultCountry)
	}
	digits, plus, ok := scan(dialled)
	if !ok {
		return Destination{}, ErrNotNumber
	}
	if !plus && len(digits) <= maxEmergencyDigits && phonenumbers.IsEmergencyNumber(digits, defaultCountry) {
		return Destination{
			E164:        digits,
			Country:     defaultCountry,
			CountryCode: phonenumbers.GetCountryCodeForRegion(defaultCountry),
			Type:        Unknown,
			Special:     Emergency,
			EU:          eu[defaultCountry],
			National:    true,
		}, nil
	}
	if n, ok := fastParse(digits, plus, defaultCountry); ok {
		if d, ok := describe(n, defaultCountry); ok {
			return d, nil
		}
	}
	n, err := phonenumbers.Parse(dialled, defaultCountry)
	if err != nil {
		return Destination{}, ErrNotNumber
	}
	d, ok := describe(n, defaultCountry)
	if !ok {
		return Destination{}, ErrInvalidNumber
	}
	return d, nil
}

// describe classifies a parsed number; false means it is in no known
// range (special ranges excepted).
func describe(n *phonenumbers.PhoneNumber, defaultCountry string) (Destination, bool) {
	cc := int(n.GetCountryCode())
	nsn := phonenumbers.GetNationalSignificantNumber(n)
	d := Destination{
		CountryCode: cc,
		Country:     phonenumbers.GetRegionCodeForNumber(n),
		Type:        numberTypes[phonenumbers.GetNumberType(n)],
		Special:     special(cc, nsn),
	}
	if d.Special == NotSpecial && (d.Country == "" || d.Type == Unknown) {
		return Destination{}, false
	}
	if d.Country == "" {
		d.Country = NonGeographic
	}
	d.E164 = "+" + strconv.Itoa(cc) + nsn
	d.EU = eu[d.Country]
	d.National = d.Country == defaultCountry
	return d, true
}

// plan is the part of a region's dialling plan the fast path needs, kept
// only when it is a fixed digit string: the international (IDD) prefix
// and the national (trunk) prefix.
type plan struct {
	cc       int
	idd, ndd string
}

var plans = sync.OnceValue(func() map[string]plan {
	out := make(map[string]plan)
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return out
	}
	for _, m := range coll.GetMetadata() {
		p := plan{cc: int(m.GetCountryCode())}
		if idd := m.GetInternationalPrefix(); allDigits(idd) {
			p.idd = idd
		}
		ndd, forParsing := m.GetNationalPrefix(), m.GetNationalPrefixForParsing()
		if allDigits(ndd) && (forParsing == "" || forParsing == ndd) && m.GetNationalPrefixTransformRule() == "" {
			p.ndd = ndd
		}
		out[m.GetId()] = p
	}
	return out
})

// fastParse reads the common forms (+CC..., IDD CC..., national prefix
// ...) without phonenumbers.Parse, whose general-purpose regular
// expressions (extensions, punctuation, carrier codes) cost two thirds of
// a classification; scan has already refused everything they look for.
// Anything else, and any result describe does not accept, goes to Parse.
// What is routed is what was classified either way: the E.164 string is
// built from the same country code and national number that are typed.
func fastParse(digits string, plus bool, region string) (*phonenumbers.PhoneNumber, bool) {
	p, ok := plans()[region]
	if !ok {
		return nil, false
	}
	var cc int
	var nsn string
	switch {
	case plus:
		cc, nsn = splitCC(digits)
	case p.idd != "" && strings.HasPrefix(digits, p.idd):
		cc, nsn = splitCC(digits[len(p.idd):])
	case p.ndd != "" && strings.HasPrefix(digits, p.ndd):
		cc, nsn = p.cc, digits[len(p.ndd):]
	default:
		return nil, false
	}
	if cc == 0 || len(nsn) < 2 || len(nsn) > 17 {
		return nil, false
	}
	v, err := strconv.ParseUint(nsn, 10, 64)
	if err != nil {
		return nil, false
	}
	cc32 := int32(cc)
	n := &phonenumbers.PhoneNumber{CountryCode: &cc32, NationalNumber: &v}
	if nsn[0] == '0' { // as Parse does for Italian-style leading zeros
		t, zeros := true, int32(1)
		for int(zeros) < len(nsn)-1 && nsn[zeros] == '0' {
			zeros++
		}
		n.ItalianLeadingZero = &t
		if zeros != 1 {
			n.NumberOfLeadingZeros = &zeros
		}
	}
	return n, true
}

// splitCC splits a country calling code (1 to 3 digits; E.164 codes are
// prefix-free, and none starts with 0) off digits.
func splitCC(digits string) (int, string) {
	if digits == "" || digits[0] == '0' {
		return 0, ""
	}
	for l := 1; l <= 3 && l < len(digits); l++ {
		cc, _ := strconv.Atoi(digits[:l])
		if phonenumbers.GetRegionCodeForCountryCode(cc) != "ZZ" {
			return cc, digits[l:]
		}
	}
	return 0, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// special classifies the non-geographic ranges by ITU-T E.164 allocation.
func special(cc int, nsn string) Special {
	switch cc {
	case 870, 881:
		return Satellite
	case 882:
		if strings.HasPrefix(nsn, "13") || strings.HasPrefix(nsn, "16") {
			return Satellite
		}
		return InternationalNetwork
	case 883:
		return InternationalNetwork
	}
	return NotSpecial
}

// scan checks the characters of a dialled string and returns its digits.
func scan(s string) (digits string, plus bool, ok bool) {
	if len(s) == 0 || len(s) > maxDialled {
		return "", false, false
	}
	var buf [maxDialled]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			buf[n] = c
			n++
		case c == '+':
			if plus || n > 0 {
				return "", false, false
			}
			plus = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/':
		default:
			return "", false, false
		}
	}
	if n == 0 {
		return "", false, false
	}
	return string(buf[:n]), plus, true
}
