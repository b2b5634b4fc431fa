"""Shoal's controller: the Octavia-compatible REST API, the database, revisions, projects and
the agents' side of the API."""
