#!/bin/sh
# Create or upgrade Temporal's two PostgreSQL schemas (run by admin-tools).
# `create` fails when the database exists, which is fine on a second run;
# setup-schema -v 0.0 is a no-op on an initialised schema, and update-schema
# applies only the versions not yet applied: safe on every start and upgrade.
set -eu
for db in temporal temporal_visibility; do
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u "$POSTGRES_USER" --db "$db" create 2>/dev/null || true
done
temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u "$POSTGRES_USER" --db temporal setup-schema -v 0.0
temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u "$POSTGRES_USER" --db temporal \
  update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u "$POSTGRES_USER" --db temporal_visibility setup-schema -v 0.0
temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u "$POSTGRES_USER" --db temporal_visibility \
  update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo "Temporal schemas are up to date."
