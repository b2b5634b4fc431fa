"""HTTP endpoints: Octavia v2 under /v2/lbaas (and /v2.0/lbaas), Shoal's own under /v2/shoal."""
