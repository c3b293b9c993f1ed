package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// envPrefix starts every environment variable the config reads.
const envPrefix = "VEILIG_"

// EnvConfig names the config file when --config is not given. The CLI
// reads it, not Load, so Load only has to tolerate it.
const EnvConfig = "VEILIG_CONFIG"

// cliEnv lists VEILIG_* variables that belong to the command line rather
// than to a key, so Load does not refuse them as unknown.
var cliEnv = []string{EnvConfig}

// key describes one settable leaf of Config, found by reflection.
type key struct {
	name  string // dotted name, e.g. "sip.min_expires"
	env   string // e.g. "VEILIG_SIP_MIN_EXPIRES"
	index []int  // reflect field index path from Config
	typ   reflect.Type
}

// keyTable is computed once: it depends only on the Config type.
var keyTable = sync.OnceValue(func() []key {
	return collectKeys(reflect.TypeFor[Config](), "", nil)
})

func collectKeys(t reflect.Type, prefix string, index []int) []key {
	var out []key
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		if isSection(f.Type) {
			out = append(out, collectKeys(f.Type, prefix+name+".", idx)...)
			continue
		}
		dotted := prefix + name
		out = append(out, key{
			name:  dotted,
			env:   envPrefix + strings.ToUpper(strings.ReplaceAll(dotted, ".", "_")),
			index: idx,
			typ:   f.Type,
		})
	}
	return out
}

// yamlName returns the key a field is known by, or "" for fields that are
// not part of the configuration (unexported or tagged "-").
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// isSection reports whether t is a group of keys rather than one value.
// Structs that parse themselves from text or YAML count as values.
func isSection(t reflect.Type) bool {
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return false
	}
	p := reflect.PointerTo(t)
	return !p.Implements(textUnmarshalerType) && !p.Implements(yamlUnmarshalerType)
}

// Keys lists every dotted key in declaration order, for docs, shell
// completion and the `veilig config` listing.
func Keys() []string {
	t := keyTable()
	out := make([]string, len(t))
	for i, k := range t {
		out[i] = k.name
	}
	return out
}

// EnvName returns the environment variable that sets key, or "" if there
// is no such key.
func EnvName(name string) string {
	if k, ok := lookupKey(name); ok {
		return k.env
	}
	return ""
}

func lookupKey(name string) (key, bool) {
	for _, k := range keyTable() {
		if k.name == name {
			return k, true
		}
	}
	return key{}, false
}

func lookupEnv(env string) (key, bool) {
	for _, k := range keyTable() {
		if k.env == env {
			return k, true
		}
	}
	return key{}, false
}

// Value returns the current value of key formatted as it would be written
// in an environment variable, so a dump can be pasted back.
func (c *Config) Value(name string) (string, bool) {
	k, ok := lookupKey(name)
	if !ok {
		return "", false
	}
	return formatValue(reflect.ValueOf(c).Elem().FieldByIndex(k.index)), true
}

func formatValue(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return string(b)
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String {
			parts := make([]string, v.Len())
			for i := range parts {
				parts[i] = v.Index(i).String()
			}
			return strings.Join(parts, ",")
		}
	}
	b, err := yaml.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return strings.TrimSpace(string(b))
}

// setString parses s by the key's type and stores it in c. The returned
// message says what is allowed; the caller adds where the value came from.
func setString(c *Config, k key, s string) error {
	dst := reflect.ValueOf(c).Elem().FieldByIndex(k.index)
	v, err := parseString(k.typ, s)
	if err != nil {
		return err
	}
	dst.Set(v)
	return nil
}

func parseString(t reflect.Type, s string) (reflect.Value, error) {
	v := reflect.New(t).Elem()
	if p, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if err := p.UnmarshalText([]byte(s)); err != nil {
			return v, fmt.Errorf("invalid value %q: %w", s, err)
		}
		return v, nil
	}
	if t == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return v, fmt.Errorf("%s, got %q", typeWant(t), s)
		}
		v.SetInt(int64(d))
		return v, nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return v, fmt.Errorf("%s, got %q", typeWant(t), s)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return v, fmt.Errorf("%s, got %q", typeWant(t), s)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, t.Bits())
		if err != nil {
			return v, fmt.Errorf("%s, got %q", typeWant(t), s)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil {
			return v, fmt.Errorf("%s, got %q", typeWant(t), s)
		}
		v.SetFloat(n)
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return v, fmt.Errorf("can only be set in the config file")
		}
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items).Convert(t))
	default:
		return v, fmt.Errorf("can only be set in the config file")
	}
	return v, nil
}

// typeWant says in words what a value of type t must look like.
func typeWant(t reflect.Type) string {
	if t == durationType {
		return "must be a duration such as 90s, 10m or 1h"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "must be true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "must be a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "must be a whole number, zero or more"
	case reflect.Float32, reflect.Float64:
		return "must be a number"
	case reflect.String:
		return "must be a single value"
	case reflect.Slice:
		return "must be a list"
	case reflect.Map:
		return "must be a mapping of names to values"
	}
	return "has the wrong type"
}
