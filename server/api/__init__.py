"""The gRPC front door: authenticates callers, checks names, calls the domain, converts its answers."""

from server.api._convert import version_json
from server.api._servicer import AtelierServicer

__all__ = ["AtelierServicer", "version_json"]
