package sqlstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// connectError wraps err, the failure to reach the database at addr
// (host:port; "" when unknown), in ErrConnect.
func connectError(addr string, err error) error {
	if addr == "" {
		if op, ok := errors.AsType[*net.OpError](err); ok && op.Addr != nil {
			addr = op.Addr.String()
		}
	}
	if addr == "" {
		return fmt.Errorf("%w: %w", ErrConnect, err)
	}
	return fmt.Errorf("%w at %s: %w", ErrConnect, addr, err)
}

// dsnAddr returns the host:port that lib/pq dials for dsn, a URL
// (postgres://…) or key=value pairs, with lib/pq's defaults ($PGHOST or
// localhost, $PGPORT or 5432); "" when dsn does not parse. It never
// returns the user or password.
func dsnAddr(dsn string) string {
	var host, port string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		host, port = u.Hostname(), u.Port()
		if h := u.Query().Get("host"); h != "" {
			host = h
		}
		if p := u.Query().Get("port"); p != "" {
			port = p
		}
	} else {
		kv, ok := parseConninfo(dsn)
		if !ok {
			return ""
		}
		host, port = kv["host"], kv["port"]
	}
	if host == "" {
		host = os.Getenv("PGHOST")
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = os.Getenv("PGPORT")
	}
	if port == "" {
		port = "5432"
	}
	if strings.HasPrefix(host, "/") { // a Unix socket's directory
		return host + "/.s.PGSQL." + port
	}
	return net.JoinHostPort(host, port)
}

// parseConninfo parses key=value pairs separated by spaces, values
// optionally single-quoted with backslash escapes, as lib/pq does.
func parseConninfo(s string) (map[string]string, bool) {
	kv := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return kv, true
		}
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, false
		}
		key = strings.TrimSpace(key)
		rest = strings.TrimLeft(rest, " \t")
		var v strings.Builder
		if strings.HasPrefix(rest, "'") {
			rest = rest[1:]
			closed := false
			for i := 0; i < len(rest); i++ {
				switch c := rest[i]; {
				case c == '\\' && i+1 < len(rest):
					i++
					v.WriteByte(rest[i])
				case c == '\'':
					rest, closed = rest[i+1:], true
				default:
					v.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return nil, false
			}
		} else {
			end := strings.IndexAny(rest, " \t\n\r")
			if end < 0 {
				end = len(rest)
			}
			v.WriteString(rest[:end])
			rest = rest[end:]
		}
		kv[key] = v.String()
		s = rest
	}
}
