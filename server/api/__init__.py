"""The API: authenticates callers, checks names, calls the domain, converts its answers. The
per-method logic (`AtelierMethods`) is shared by the transports: gRPC (`AtelierServicer`) here,
Connect and gRPC-Web in server.web."""

from server.api._call import Call
from server.api._convert import version_json
from server.api._errors import to_status_proto
from server.api._file_urls import FileUrls
from server.api._grpc import AtelierServicer
from server.api._methods import AtelierMethods

__all__ = ["AtelierMethods", "AtelierServicer", "Call", "FileUrls", "to_status_proto", "version_json"]
