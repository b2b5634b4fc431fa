"""Request schemas in Octavia v2's shape: one module per resource, `*Create` and `*Update`
families. Responses are built by controller.views from the database rows."""
