"""The Gemini provider: Google's models through google-genai, with our own retries.

One call is three stages:

- Send: builds the request (the branch's earlier turns, then the new user turn) and sends it,
  until the model starts answering.
- Receive: reads the streamed answer, reporting every so often (at most twice a second) the
  model's latest thought summary (a text model is asked for them) or how much it has produced.
- Parse: turns the answer into a change set. A text model answers with a JSON change set
  (asked for with a JSON schema); an image model answers with images, which become files.

The new user turn carries the prompt, the attachments and (when a tree is refined) the tree's
files: see `_request.build_user_turn` for the exact rules and the context budget. The turns
a call adds (`ChangeSet.turns`) are exactly the contents it sent and received, with the model's
streamed chunks merged into one turn, so sending them back as history replays them unchanged.

Every request to the model, retries and the repair request included, first waits for the
job runner's `ModelGate` (given the request's input tokens, estimated locally: see
`_contents.estimated_input_tokens`), and tells it how the model answered and how many input
tokens the model counted. A 429 goes to the gate with the
delay the answer asks for (RetryInfo, Retry-After), and the job waits out the model's cooldown
there, spending none of its attempts; a 429 for a used-up daily quota fails at once
(MODEL_DAILY_QUOTA_EXHAUSTED). Other retries are ours, not the SDK's: at most
`provider_max_attempts` attempts per call, with capped exponential backoff and jitter, on
408/5xx answers, timeouts and broken connections. Every failure is a ProviderError; a failed
call returns no files at all. Each request's token usage goes to `Progress.usage`.

One module a question:

- `_request`: what we send (the system instruction, the config, the user turn and its context budget).
- `_call`: how we call (the google-genai client, the gate, retries, per-attempt deadlines).
- `_errors`: what the API's failures mean (worth another try, quota refusals and their delays).
- `_received`: what has arrived on one request (parts, usage, what to report while it streams).
- `_transport`: the connections under the client, room for every job in flight.
- `_answer`: how we read the answer (a JSON change set, or images, as a ChangeSet).
- `_contents`: our turns as google-genai contents and back, and what Gemini reads inline.
- `_provider`: the provider, which runs them as its three stages.
"""

from __future__ import annotations

from server.providers.gemini._provider import GeminiProvider

__all__ = ["GeminiProvider"]
