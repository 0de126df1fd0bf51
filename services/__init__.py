"""Privet's gRPC services and the command line: they translate between the wire and
`privet.governance`, which holds every rule."""
