package auth

import (
	"errors"
	"fmt"
)

var (
	// ErrMalformedCredentials is wrapped by every ParseCredentials error, so
	// the caller can tell a broken or hostile header (answer 400 or drop)
	// from a wrong password (answer 401).
	ErrMalformedCredentials = errors.New("malformed digest credentials")

	// ErrWeakSecret is matched (errors.Is) by every CheckPassword error. The
	// error text itself says what to change and is safe to show the user.
	ErrWeakSecret = errors.New("secret does not meet the password policy")
)

var (
	_ fmt.Stringer = Algorithm(0)
	_ fmt.Stringer = NonceResult(0)
)
