#!/bin/bash
# First start only: create the engine and the housing portal on it, and load
# the sample listings.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE EXTENSION IF NOT EXISTS housing_portal CASCADE;
SELECT housing_cache.generate_listings(${HC_LISTINGS:-100000})
 WHERE NOT EXISTS (SELECT 1 FROM housing.listings);
SQL
