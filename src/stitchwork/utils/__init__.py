"""Small shared helpers: hashing, atomic files, provenance."""
