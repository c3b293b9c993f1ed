// Package backup writes and restores encrypted backups of a Veilig data
// directory.
//
// A backup is an age file (filippo.io/age): encrypted to a passphrase
// (scrypt) or to one or more age recipients, so it can be stored on a
// machine or service that is not trusted with the secrets. Inside is a
// gzip-compressed tar with, in this order:
//
//	manifest.json   format, time, version, the data key's public id, and
//	                the size and SHA-256 of every other entry
//	veilig.db       an online snapshot of the SQLite store (VACUUM INTO:
//	                the database as it stood when the backup began, taken
//	                while the server keeps writing)
//	tls/...         the generated local CA and server certificate, so phones
//	                that trust the CA keep trusting the restored server
//	data.key        only when asked for: the key that opens the sealed
//	                secrets (digest HA1 values, trunk credentials)
//
// Without data.key a backup (and anyone who decrypts it) holds only sealed
// secrets; restoring it needs the key from where it is kept, and the
// manifest's key id says which key that is.
package backup
