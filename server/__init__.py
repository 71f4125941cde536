"""The Atelier server: gRPC API (server.api), domain logic (server.domain) and providers."""
