// Package uuid formats the IDs of recorded rows (events, conversions).
package uuid

import "encoding/hex"

// Format formats 16 bytes as a UUID, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
// The caller sets the version and variant bits.
func Format(id []byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], id[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], id[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], id[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], id[10:16])
	return string(buf[:])
}
