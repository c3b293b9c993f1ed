// Command veilig is the secure VoIP server for customer contact.
package main

import (
	"os"

	"github.com/veilig/veilig/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
