package tollfraud

// DefaultHighRisk returns the default high-risk destination countries (ISO
// 3166-1). Calls to them are refused for every class of service unless an
// allow prefix covers the number. The tenant's own country is never
// treated as high risk.
//
// Sources, and why each group is here:
//   - CFCA Global Fraud Loss Survey 2011, top terminating countries for
//     fraud: Cuba, Somalia, Sierra Leone, Zimbabwe (and Latvia, left out
//     because it is in the EU and its abused ranges are premium-rate
//     numbers, which are refused by type anyway).
//   - FTC and FCC consumer alerts on "one ring" scams (2014, 2019): the
//     NANP area codes 268, 284, 473, 649, 664, 767, 809/829/849, 876, which
//     look domestic to +1 callers but are Antigua, the British Virgin
//     Islands, Grenada, Turks and Caicos, Montserrat, Dominica, the
//     Dominican Republic and Jamaica; and the 2019 wave from Mauritania
//     (+222) and Sierra Leone (+232).
//   - IRSF number-range sellers advertise mostly Pacific island, West
//     African and Caribbean ranges (TransNexus, "International premium rate
//     number market"; ConnexCS, "International Revenue Share Fraud: the
//     carrier's playbook"): the Pacific microstates and Guinea, Guinea-
//     Bissau, Liberia here.
//
// The list is a default to start from, not a verdict on a country: a
// contact centre with customers in one of them allows that prefix.
// Satellite and international-network ranges are refused by Special, and
// premium-rate numbers by type, whatever their country.
func DefaultHighRisk() []string {
	return []string{
		// CFCA top terminating countries
		"CU", "SO", "SL", "ZW",
		// FTC/FCC one-ring scam destinations
		"AG", "VG", "GD", "TC", "MS", "DM", "DO", "JM", "MR",
		// West African IRSF ranges
		"GN", "GW", "LR",
		// Pacific island IRSF ranges
		"PG", "SB", "VU", "NR", "TV", "KI", "TO", "WS", "CK", "NU", "TK",
		"FM", "MH", "PW", "WF",
	}
}
