"""The Gemini provider: Google's models through google-genai, with our own retries.

One call is three stages:

- Send: builds the request (the branch's earlier turns, then the new user turn) and sends it,
  until the model starts answering.
- Receive: reads the streamed answer, reporting how much has arrived every so often.
- Parse: turns the answer into a change set. A text model answers with a JSON change set
  (asked for with a JSON schema); an image model answers with images, which become files.

The new user turn carries the prompt, the attachments and (when a tree is refined) the tree's
files: see `_request.build_user_turn` for the exact rules and the context budget. The turns
a call adds (`ChangeSet.turns`) are exactly the contents it sent and received, with the model's
streamed chunks merged into one turn, so sending them back as history replays them unchanged.

Retries are ours, not the SDK's: at most `provider_max_attempts` requests per call, with capped
exponential backoff and jitter, on 408/429/5xx answers, timeouts and broken connections. Every
failure is a ProviderError; a failed call returns no files at all.

One module a question:

- `_request`: what we send (the system instruction, the config, the user turn and its context budget).
- `_call`: how we call (the google-genai client, retries, per-attempt deadlines, errors).
- `_answer`: how we read the answer (a JSON change set, or images, as a ChangeSet).
- `_contents`: our turns as google-genai contents and back, and what Gemini reads inline.
- `_provider`: the provider, which runs them as its three stages.
"""

from __future__ import annotations

from server.providers.gemini._provider import GeminiProvider

__all__ = ["GeminiProvider"]
