-- housing_cache--0.2.0.sql, built by `make` from the files of sql/housing_cache/

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION housing_cache" to load this file. \quit

