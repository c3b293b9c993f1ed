// Package config holds Veilig's one typed configuration and the rules for
// building it.
//
// A Config is built in layers, each overriding the one before:
//
//  1. Default(): secure values that run a useful server with no file at all.
//  2. A YAML file, decoded strictly: an unknown or repeated key is an error
//     that names the key and its line, so a typo never silently falls back
//     to a default.
//  3. VEILIG_<SECTION>_<KEY> environment variables. An unknown VEILIG_*
//     variable is an error for the same reason as an unknown file key.
//  4. Overrides from command-line flags, keyed by dotted name ("sip.domain").
//
// Validate then refuses impossible and insecure combinations. Anything that
// weakens security must be spelled with an insecure_ key, and Warnings lists
// every such choice so the server prints it at start and an audit reports it.
//
// The set of keys is derived by reflection from the yaml tags of Config, so
// the file format, the environment names, the flag overrides and Keys()
// cannot drift apart. Adding a section means adding a struct field with a
// yaml tag, its values in Default, and (optionally) validate and warn
// methods on the section type, which Validate and Warnings find on their own.
//
// A loaded *Config is immutable by convention: it is shared by every
// subsystem, and nobody writes to it. A reload builds and validates a new one.
package config
