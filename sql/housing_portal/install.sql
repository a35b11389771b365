-- housing_portal--0.2.0.sql, built by `make` from the files of sql/housing_portal/

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION housing_portal" to load this file. \quit

