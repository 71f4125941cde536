"""Providers: where generated files come from, behind one small interface.

The interface (`Provider`, what it is asked in a `ProviderRequest`, what it answers in a
`ChangeSet`, how it reports `Progress`) is exported here for the domain that calls it.
"""

from __future__ import annotations

from server.config import Settings
from server.providers._base import (
    BYTES_PER_TOKEN,
    MEDIA_PART_TOKENS,
    OPEN_GATE,
    ChangeSet,
    DraftAnswer,
    DraftRequest,
    JobKind,
    ModelGate,
    ModelUsage,
    Part,
    Progress,
    Provider,
    ProviderError,
    ProviderRequest,
    TokenCount,
    Turn,
    as_text,
    estimate_input_tokens,
    estimate_tokens,
    is_media,
    text_size,
)


class ProviderRegistry:
    """The providers serving the configured models, built once at start-up."""

    def __init__(self, settings: Settings) -> None:
        self._providers: dict[str, Provider] = {}
        for model in settings.available_models:
            if model.provider not in self._providers:
                self._providers[model.provider] = _build(model.provider, settings)

    async def ready(self) -> None:
        """Returns once every provider can start work at once."""
        for provider in self._providers.values():
            await provider.ready()

    async def aclose(self) -> None:
        """Ends every provider (the server is stopping: no job runs any more)."""
        for provider in self._providers.values():
            await provider.aclose()

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            raise ProviderError(
                f"the provider {name!r} is not configured on this server",
                reason="PROVIDER_UNAVAILABLE",
                code="FAILED_PRECONDITION",
            )
        return provider


def _build(name: str, settings: Settings) -> Provider:
    # Imported here so that a server only loads the providers it uses.
    if name == "offline":
        from server.providers.offline import OfflineProvider

        return OfflineProvider(pace_seconds=settings.offline_pace_seconds)
    if name == "scripted":
        from server.providers.scripted import ScriptedProvider

        return ScriptedProvider()
    if name == "gemini":
        from server.providers.gemini import GeminiProvider

        return GeminiProvider(settings)
    raise ValueError(f"unknown provider {name!r}")


__all__ = [
    "BYTES_PER_TOKEN",
    "MEDIA_PART_TOKENS",
    "OPEN_GATE",
    "ChangeSet",
    "DraftAnswer",
    "DraftRequest",
    "JobKind",
    "ModelGate",
    "ModelUsage",
    "Part",
    "Progress",
    "Provider",
    "ProviderError",
    "ProviderRegistry",
    "ProviderRequest",
    "TokenCount",
    "Turn",
    "as_text",
    "estimate_input_tokens",
    "estimate_tokens",
    "is_media",
    "text_size",
]
