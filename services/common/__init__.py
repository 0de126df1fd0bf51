"""Shared server and client plumbing for every Privet service."""
