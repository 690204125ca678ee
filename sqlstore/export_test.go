package sqlstore

// MigrationSQLTo is migrationSQL, for tests that need a schema at an
// older version.
var MigrationSQLTo = migrationSQL
