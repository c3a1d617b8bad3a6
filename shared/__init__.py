"""Code shared by the Tickwork API and daemon: models, settings, database access,
schedule maths and the HTTP client."""
