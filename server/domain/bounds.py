"""How many characters each text a caller sends may hold: as many as the columns that store it;
and how large a number it may name.

PostgreSQL refuses a longer value (and SQLite stores anything), so the API checks every text of a
request against these before either database sees it. They are read from storage's columns, so
that a column and its bound never disagree.
"""

from __future__ import annotations

import storage

# A request id names a version or a draft; the shorter column bounds it.
REQUEST_ID = min(storage.max_length(table, "request_id") for table in (storage.Version, storage.Draft))
# A model name reaches every table that names a model; the shortest column bounds it.
MODEL = min(
    storage.max_length(table, "model")
    for table in (storage.Generation, storage.Version, storage.Job, storage.ConversationSession)
)
ATTACHMENT_NAME = storage.max_length(storage.VersionAttachment, "name")
MIME_TYPE = min(
    storage.max_length(storage.VersionAttachment, "mime_type"),
    storage.max_length(storage.ManifestEntry, "mime_type"),
)
PATH = storage.max_length(storage.ManifestEntry, "path")
WEBHOOK_URL = min(
    storage.max_length(storage.WebhookSubscription, "url"), storage.max_length(storage.WebhookDelivery, "url")
)
# The largest version and turn numbers: what a name or a page token may hold.
VERSION_NUMBER = storage.max_integer(storage.Version, "number")
TURN_NUMBER = storage.max_integer(storage.Turn, "number")
