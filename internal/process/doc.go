// Package process looks after the server process's own resources: the
// open-file limit it raises and derives the connection limit from, and
// the idle memory it hands back to the operating system after a flood.
package process
