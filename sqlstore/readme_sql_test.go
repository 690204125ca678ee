package sqlstore_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/abkit/experiments"
)

// The README's SQL bucketing example, run as it is on a users table in a
// migrated schema, assigns the buckets SHA256Bucket assigns.
func TestREADMEBucketingSQL(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var query string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "experiments_bucket(") && strings.Contains(m[1], "FROM users") {
			query = m[1]
		}
	}
	if query == "" {
		t.Fatal("README.md has no SQL example of experiments_bucket on users")
	}
	group := regexp.MustCompile(`experiments_bucket\('([^']*)', user_id, (\d+)\)`).FindStringSubmatch(query)
	if group == nil || group[2] != "2" {
		t.Fatalf("the example %q: want experiments_bucket('group', user_id, 2)", query)
	}
	ctx := context.Background()
	schema := newSchema(t)
	openStoreIn(t, schema)
	conn, err := testDB(t).Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET search_path TO "+pq.QuoteIdentifier(schema)); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "RESET search_path")
	if _, err := conn.ExecContext(ctx, "CREATE TABLE users (user_id text); INSERT INTO users SELECT g::text FROM generate_series(1, 200) g"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryxContext(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var user string
		var bucket int
		if err := rows.Scan(&user, &bucket); err != nil {
			t.Fatal(err)
		}
		if want := experiments.SHA256Bucket(group[1], user, 2); bucket != want {
			t.Errorf("user %s: bucket %d in SQL, %d in Go", user, bucket, want)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 200 {
		t.Errorf("%d rows, want 200", n)
	}
}
