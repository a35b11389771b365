"""housing_cache benchmark suite (see bench/README.md)."""
