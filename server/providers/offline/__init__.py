"""The offline provider: the embedded default. Deterministic, no network, and no waiting unless
a pace is set (ATELIER_OFFLINE_PACE_SECONDS, a pause per stage for demonstrations).

A generation writes a small project from the prompt's words; a refinement follows the
instructions of the prompt (see `_instructions`). The same request always gives
byte-identical files.

One module a question:

- `_plan`: what a generation prompt asks for (language, names, the files to write).
- `_render`: the planned files, written.
- `_instructions`: the refinement language, parsed into instructions.
- `_draft`: the instructions applied to the tree, and the change set that results.
- `_content`: text appended in a file's own syntax, and the first content of a new file.
- `_checks`: whether a file we wrote is valid.
- `_png`: the PNG writer and reader, and the picture of a prompt.
- `_text`: text made safe for one line, folded to ASCII, split into word sets.
- `_provider`: the provider, which runs them as its stages Plan, Write and Check.
"""

from __future__ import annotations

from server.providers.offline._provider import OfflineProvider

__all__ = ["OfflineProvider"]
