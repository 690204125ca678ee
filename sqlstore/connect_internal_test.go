package sqlstore

import "testing"

func TestDSNAddr(t *testing.T) {
	t.Setenv("PGHOST", "")
	t.Setenv("PGPORT", "")
	for _, tc := range []struct{ name, dsn, want string }{
		{"ok, a URL", "postgres://app:pw@db.example:6543/app?sslmode=disable", "db.example:6543"},
		{"ok, a URL without a port", "postgresql://app@db.example/app", "db.example:5432"},
		{"ok, a URL without a host", "postgres:///app", "localhost:5432"},
		{"ok, an IPv6 URL", "postgres://[::1]:5433/app", "[::1]:5433"},
		{"ok, a URL with host in the query", "postgres:///app?host=/run/postgresql", "/run/postgresql/.s.PGSQL.5432"},
		{"ok, key=value pairs", "host=10.0.0.5 port=5555 user=app password='a b' dbname=app", "10.0.0.5:5555"},
		{"ok, quoted values", "user=app host='db one' password='it\\'s'", "db one:5432"},
		{"ok, no host", "dbname=app", "localhost:5432"},
		{"nok, not a DSN", "nonsense", ""},
		{"nok, an unclosed quote", "host='db", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dsnAddr(tc.dsn); got != tc.want {
				t.Errorf("dsnAddr(%q) = %q, want %q", tc.dsn, got, tc.want)
			}
		})
	}
}
