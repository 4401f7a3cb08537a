"""The read side of each service's contract: queries over its public `v_*` views.

A service's events (schemas/*.py) say what it publishes; its `v_*` views say what it shows.
The queries over those views, and the shaping of their rows into the documents the CLI's
`--output json` and the API return, live here, one module per owning service, because two
parties read them: the service's own command group (`services/<name>/cli`) and the api
service. A service never imports another service, so this code cannot live in either: it
imports no service and no runtime module, and takes an open (read-only) connection.
"""
