package backup

import "errors"

// Errors callers tell apart (errors.Is); each message says what to do.
var (
	// ErrDecrypt: the passphrase or identity does not open the backup.
	ErrDecrypt = errors.New("cannot decrypt the backup")
	// ErrFormat: not a Veilig backup, or damaged.
	ErrFormat = errors.New("not a valid Veilig backup")
	// ErrNotEmpty: the target data directory already holds something.
	ErrNotEmpty = errors.New("data directory is not empty")
	// ErrNoKey: the backup holds no data key and none was given.
	ErrNoKey = errors.New("no data key for this backup")
)
