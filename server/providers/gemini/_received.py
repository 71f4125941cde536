"""What has arrived on one request: the parts, how the answer ended, the usage, and what is new
to report while the model works (how much it has produced, its latest thought summary)."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.genai import types

from server.providers._base import ModelUsage

# How long a thought summary may be in a progress message.
THOUGHT_SUMMARY_CHARACTERS = 160


@dataclass
class Received:
    parts: list[types.Part] = field(default_factory=list)
    chunks: int = 0
    saw_candidate: bool = False
    finish_reason: str = ""
    finish_message: str = ""
    block_reason: str = ""
    block_message: str = ""
    # The latest usageMetadata: a streamed answer's last one is the whole request's.
    usage_metadata: types.GenerateContentResponseUsageMetadata | None = None
    # What the answer has produced so far (thoughts are not counted).
    characters: int = 0
    data_bytes: int = 0
    images: int = 0
    # The text of the thought the model is sending now: consecutive thought parts, from the
    # one that opened it (Gemini opens each thought summary with a "**Heading**" line).
    thought: str = ""
    _in_thought: bool = False
    _reported: tuple[str, str] = ("", "")

    def add(self, chunk: types.GenerateContentResponse) -> None:
        self.chunks += 1
        feedback = chunk.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            self.block_reason = _enum_name(feedback.block_reason)
            self.block_message = feedback.block_reason_message or ""
        if chunk.usage_metadata is not None:
            self.usage_metadata = chunk.usage_metadata
        if not chunk.candidates:
            return
        self.saw_candidate = True
        candidate = chunk.candidates[0]
        if candidate.content is not None and candidate.content.parts:
            for part in candidate.content.parts:
                self.parts.append(part)
                self._count(part)
        if candidate.finish_reason is not None:
            self.finish_reason = _enum_name(candidate.finish_reason)
            self.finish_message = candidate.finish_message or ""

    def _count(self, part: types.Part) -> None:
        if part.thought:
            text = part.text or ""
            if not self._in_thought or text.lstrip().startswith("**"):
                self.thought = text
            else:
                self.thought += text
            self._in_thought = True
            return
        self._in_thought = False
        self.characters += len(part.text or "")
        if part.inline_data is not None and part.inline_data.data is not None:
            self.data_bytes += len(part.inline_data.data)
            if (part.inline_data.mime_type or "").startswith("image/"):
                self.images += 1

    @property
    def amount(self) -> str:
        text = f"{self.characters} characters"
        return text + (f" and {self.data_bytes} bytes of images" if self.data_bytes else "")

    def news(self) -> str | None:
        """What to report since the last call: the model's new thought, else how much it has
        produced if that grew; None if nothing changed."""
        summary = thought_summary(self.thought)
        amount = self.amount if self.characters or self.data_bytes else ""
        last_summary, last_amount = self._reported
        if summary and summary != last_summary:
            self._reported = (summary, last_amount)
            return f"thinking: {summary}"
        if amount and amount != last_amount:
            self._reported = (last_summary, amount)
            return f"received {amount} so far"
        return None

    @property
    def usage(self) -> ModelUsage | None:
        """What this request used, as the model reported it; None if it did not say."""
        usage = self.usage_metadata
        if usage is None:
            return None
        return ModelUsage(
            input_tokens=usage.prompt_token_count or 0,
            output_tokens=usage.candidates_token_count or 0,
            thinking_tokens=usage.thoughts_token_count or 0,
            images=self.images,
        )

    @property
    def usage_note(self) -> str:
        """The usage as a change set's note, e.g. "tokens: 12 in, 34 out, 56 thinking"."""
        usage = self.usage
        if usage is None:
            return ""
        thinking = f", {usage.thinking_tokens} thinking" if usage.thinking_tokens else ""
        return f"tokens: {usage.input_tokens} in, {usage.output_tokens} out{thinking}"


def thought_summary(thought: str) -> str:
    """A thought, short: its first line without Markdown emphasis, cut to THOUGHT_SUMMARY_CHARACTERS."""
    line = next((line.strip() for line in thought.splitlines() if line.strip()), "")
    line = line.strip("*_#` ").strip()
    if len(line) > THOUGHT_SUMMARY_CHARACTERS:
        line = line[: THOUGHT_SUMMARY_CHARACTERS - 1].rstrip() + "\u2026"
    return line


def _enum_name(value: object) -> str:
    return str(getattr(value, "value", value))
