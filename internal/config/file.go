package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeFile layers the YAML document in data over c. name is used in
// error messages only.
//
// The document is first walked against the Config type so that every
// problem is reported with its dotted key and line (yaml.v3's own errors
// name neither the full key nor, for type errors, the key at all). Only a
// document that passes is decoded, by yaml.v3 with KnownFields(true) as a
// second line of defence for values (such as lists of structs) whose
// insides the walk leaves to yaml.v3.
func decodeFile(c *Config, name string, data []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file configures nothing
		}
		return &Error{Source: name, Msg: err.Error()}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return &Error{Source: name, Line: max(extra.Line, 1), Msg: "the file must hold a single YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		return nil // a file of only comments configures nothing
	}
	w := walker{file: name}
	w.section(root, reflect.TypeFor[Config](), "")
	if len(w.errs) > 0 {
		return errors.Join(w.errs...)
	}

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(c); err != nil {
		return &Error{Source: name, Msg: err.Error()}
	}
	return nil
}

// walker checks a YAML tree against the Config type, collecting every
// problem rather than stopping at the first.
type walker struct {
	file string
	errs []error
}

func (w *walker) fail(n *yaml.Node, key, format string, args ...any) {
	w.errs = append(w.errs, &Error{Key: key, Source: w.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// section checks a mapping node against struct type t whose keys are
// prefixed by path ("" at the root, "sip." inside sip).
func (w *walker) section(n *yaml.Node, t reflect.Type, path string) {
	name := path
	if name != "" {
		name = name[:len(name)-1]
	}
	if n.Kind == yaml.AliasNode {
		w.fail(n, name, "YAML aliases are not supported in the config file")
		return
	}
	if n.Kind != yaml.MappingNode {
		if name == "" {
			w.fail(n, "", "the file must be a mapping of sections and keys, got %s", describe(n))
		} else {
			w.fail(n, name, "must be a section of keys, got %s", describe(n))
		}
		return
	}
	fields := map[string]reflect.StructField{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if yn := yamlName(f); yn != "" {
			fields[yn] = f
			names = append(names, yn)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			w.fail(kn, name, "keys must be plain names, got %s", describe(kn))
			continue
		}
		full := path + kn.Value
		if kn.Value == "<<" {
			w.fail(kn, name, "YAML merge keys (<<) are not supported in the config file")
			continue
		}
		if line, dup := seen[kn.Value]; dup {
			w.fail(kn, full, "key repeated (first set on line %d)", line)
			continue
		}
		seen[kn.Value] = kn.Line
		f, ok := fields[kn.Value]
		if !ok {
			msg := "unknown key"
			if s := suggest(kn.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %s%s?)", path, s)
			} else {
				msg += "; known keys are " + strings.Join(names, ", ")
			}
			w.fail(kn, full, "%s", msg)
			continue
		}
		if isNull(vn) {
			continue // "key:" with no value keeps the default
		}
		if isSection(f.Type) {
			w.section(vn, f.Type, full+".")
			continue
		}
		w.value(vn, f.Type, full)
	}
}

// value checks that a leaf decodes into type t, reporting yaml.v3's
// refusal in words that say what is allowed.
func (w *walker) value(n *yaml.Node, t reflect.Type, key string) {
	if n.Kind == yaml.AliasNode {
		w.fail(n, key, "YAML aliases are not supported in the config file")
		return
	}
	scalarWanted := t.Kind() != reflect.Slice && t.Kind() != reflect.Map && t.Kind() != reflect.Struct
	if scalarWanted && n.Kind != yaml.ScalarNode {
		w.fail(n, key, "%s, got %s", typeWant(t), describe(n))
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		if n.Kind == yaml.ScalarNode {
			w.fail(n, key, "%s, got %q", typeWant(t), n.Value)
		} else {
			w.fail(n, key, "%s: %v", typeWant(t), err)
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}
