import datetime

from atelier.v1 import batch_pb2 as _batch_pb2
from atelier.v1 import cost_pb2 as _cost_pb2
from atelier.v1 import blame_pb2 as _blame_pb2
from atelier.v1 import draft_pb2 as _draft_pb2
from atelier.v1 import file_pb2 as _file_pb2
from atelier.v1 import generation_pb2 as _generation_pb2
from atelier.v1 import model_pb2 as _model_pb2
from atelier.v1 import progress_pb2 as _progress_pb2
from atelier.v1 import session_pb2 as _session_pb2
from atelier.v1 import tree_pb2 as _tree_pb2
from atelier.v1 import webhook_pb2 as _webhook_pb2
from atelier.v1 import upload_pb2 as _upload_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "request_id", "model", "attachments", "webhook", "variants", "count", "draft")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    request_id: str
    model: str
    attachments: _containers.RepeatedCompositeFieldContainer[_file_pb2.Attachment]
    webhook: _webhook_pb2.WebhookSubscription
    variants: _containers.RepeatedCompositeFieldContainer[_batch_pb2.Variant]
    count: int
    draft: str
    def __init__(self, prompt: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[_file_pb2.Attachment, _Mapping]]] = ..., webhook: _Optional[_Union[_webhook_pb2.WebhookSubscription, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[_batch_pb2.Variant, _Mapping]]] = ..., count: _Optional[int] = ..., draft: _Optional[str] = ...) -> None: ...

class TweakRequest(_message.Message):
    __slots__ = ("name", "prompt", "attachments", "request_id", "etag", "model", "webhook")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    name: str
    prompt: str
    attachments: _containers.RepeatedCompositeFieldContainer[_file_pb2.Attachment]
    request_id: str
    etag: str
    model: str
    webhook: _webhook_pb2.WebhookSubscription
    def __init__(self, name: _Optional[str] = ..., prompt: _Optional[str] = ..., attachments: _Optional[_Iterable[_Union[_file_pb2.Attachment, _Mapping]]] = ..., request_id: _Optional[str] = ..., etag: _Optional[str] = ..., model: _Optional[str] = ..., webhook: _Optional[_Union[_webhook_pb2.WebhookSubscription, _Mapping]] = ...) -> None: ...

class RegenerateRequest(_message.Message):
    __slots__ = ("name", "request_id", "variants", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_id: str
    variants: _containers.RepeatedCompositeFieldContainer[_batch_pb2.Variant]
    count: int
    def __init__(self, name: _Optional[str] = ..., request_id: _Optional[str] = ..., variants: _Optional[_Iterable[_Union[_batch_pb2.Variant, _Mapping]]] = ..., count: _Optional[int] = ...) -> None: ...

class IterateRequest(_message.Message):
    __slots__ = ("parent", "prompt", "request_id", "etag", "model", "webhook")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    parent: str
    prompt: str
    request_id: str
    etag: str
    model: str
    webhook: _webhook_pb2.WebhookSubscription
    def __init__(self, parent: _Optional[str] = ..., prompt: _Optional[str] = ..., request_id: _Optional[str] = ..., etag: _Optional[str] = ..., model: _Optional[str] = ..., webhook: _Optional[_Union[_webhook_pb2.WebhookSubscription, _Mapping]] = ...) -> None: ...

class ProgressRequest(_message.Message):
    __slots__ = ("name", "after_seq", "resume_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_seq: int
    resume_token: str
    def __init__(self, name: _Optional[str] = ..., after_seq: _Optional[int] = ..., resume_token: _Optional[str] = ...) -> None: ...

class CancelVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_generation_pb2.Version]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[_generation_pb2.Version, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetGenerationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListGenerationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "owner", "show_deleted")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SHOW_DELETED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    owner: str
    show_deleted: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., owner: _Optional[str] = ..., show_deleted: _Optional[bool] = ...) -> None: ...

class ListGenerationsResponse(_message.Message):
    __slots__ = ("generations", "next_page_token")
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    generations: _containers.RepeatedCompositeFieldContainer[_generation_pb2.Generation]
    next_page_token: str
    def __init__(self, generations: _Optional[_Iterable[_Union[_generation_pb2.Generation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteGenerationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UndeleteGenerationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "include_blame")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_BLAME_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    include_blame: bool
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_blame: _Optional[bool] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "next_page_token")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_file_pb2.File]
    next_page_token: str
    def __init__(self, files: _Optional[_Iterable[_Union[_file_pb2.File, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ReadFileResponse(_message.Message):
    __slots__ = ("file", "data", "offset")
    FILE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    file: _file_pb2.File
    data: bytes
    offset: int
    def __init__(self, file: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model", "limits")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_model_pb2.Model]
    default_model: str
    limits: RequestLimits
    def __init__(self, models: _Optional[_Iterable[_Union[_model_pb2.Model, _Mapping]]] = ..., default_model: _Optional[str] = ..., limits: _Optional[_Union[RequestLimits, _Mapping]] = ...) -> None: ...

class RequestLimits(_message.Message):
    __slots__ = ("max_batch_size", "max_prompt_bytes", "max_attachment_bytes", "max_message_bytes", "max_file_bytes", "max_tree_bytes", "max_tree_files")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTACHMENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TREE_FILES_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_prompt_bytes: int
    max_attachment_bytes: int
    max_message_bytes: int
    max_file_bytes: int
    max_tree_bytes: int
    max_tree_files: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_prompt_bytes: _Optional[int] = ..., max_attachment_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_file_bytes: _Optional[int] = ..., max_tree_bytes: _Optional[int] = ..., max_tree_files: _Optional[int] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListTurnsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "version")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    version: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ListTurnsResponse(_message.Message):
    __slots__ = ("turns", "next_page_token")
    TURNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    turns: _containers.RepeatedCompositeFieldContainer[_session_pb2.Turn]
    next_page_token: str
    def __init__(self, turns: _Optional[_Iterable[_Union[_session_pb2.Turn, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("base", "target", "include_text_diffs")
    BASE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TEXT_DIFFS_FIELD_NUMBER: _ClassVar[int]
    base: str
    target: str
    include_text_diffs: bool
    def __init__(self, base: _Optional[str] = ..., target: _Optional[str] = ..., include_text_diffs: _Optional[bool] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_tree_pb2.FileDiff]
    def __init__(self, files: _Optional[_Iterable[_Union[_tree_pb2.FileDiff, _Mapping]]] = ...) -> None: ...

class ExportTreeRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExportTreeResponse(_message.Message):
    __slots__ = ("file", "data", "offset")
    FILE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    file: _file_pb2.File
    data: bytes
    offset: int
    def __init__(self, file: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...

class UploadTreeRequest(_message.Message):
    __slots__ = ("request_id", "description", "file", "data")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    description: str
    file: _file_pb2.File
    data: bytes
    def __init__(self, request_id: _Optional[str] = ..., description: _Optional[str] = ..., file: _Optional[_Union[_file_pb2.File, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class MergeRequest(_message.Message):
    __slots__ = ("ours", "theirs", "strategy", "request_id")
    OURS_FIELD_NUMBER: _ClassVar[int]
    THEIRS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ours: str
    theirs: str
    strategy: _tree_pb2.MergeStrategy
    request_id: str
    def __init__(self, ours: _Optional[str] = ..., theirs: _Optional[str] = ..., strategy: _Optional[_Union[_tree_pb2.MergeStrategy, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class MergeResponse(_message.Message):
    __slots__ = ("version", "conflicts")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    version: _generation_pb2.Version
    conflicts: _containers.RepeatedCompositeFieldContainer[_tree_pb2.MergeConflict]
    def __init__(self, version: _Optional[_Union[_generation_pb2.Version, _Mapping]] = ..., conflicts: _Optional[_Iterable[_Union[_tree_pb2.MergeConflict, _Mapping]]] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EstimateCostRequest(_message.Message):
    __slots__ = ("generate", "tweak", "iterate", "regenerate")
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    TWEAK_FIELD_NUMBER: _ClassVar[int]
    ITERATE_FIELD_NUMBER: _ClassVar[int]
    REGENERATE_FIELD_NUMBER: _ClassVar[int]
    generate: GenerateRequest
    tweak: TweakRequest
    iterate: IterateRequest
    regenerate: RegenerateRequest
    def __init__(self, generate: _Optional[_Union[GenerateRequest, _Mapping]] = ..., tweak: _Optional[_Union[TweakRequest, _Mapping]] = ..., iterate: _Optional[_Union[IterateRequest, _Mapping]] = ..., regenerate: _Optional[_Union[RegenerateRequest, _Mapping]] = ...) -> None: ...

class EstimateCostResponse(_message.Message):
    __slots__ = ("model", "price", "outputs", "calls", "input_tokens", "input_tokens_counted", "output_tokens", "images", "cost", "currency", "assumptions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_COUNTED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    ASSUMPTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    price: _cost_pb2.Price
    outputs: int
    calls: int
    input_tokens: int
    input_tokens_counted: bool
    output_tokens: int
    images: int
    cost: float
    currency: str
    assumptions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., price: _Optional[_Union[_cost_pb2.Price, _Mapping]] = ..., outputs: _Optional[int] = ..., calls: _Optional[int] = ..., input_tokens: _Optional[int] = ..., input_tokens_counted: _Optional[bool] = ..., output_tokens: _Optional[int] = ..., images: _Optional[int] = ..., cost: _Optional[float] = ..., currency: _Optional[str] = ..., assumptions: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "principal")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    principal: str
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., principal: _Optional[str] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("rows", "total_cost", "currency")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[_cost_pb2.UsageRow]
    total_cost: float
    currency: str
    def __init__(self, rows: _Optional[_Iterable[_Union[_cost_pb2.UsageRow, _Mapping]]] = ..., total_cost: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class DraftPromptRequest(_message.Message):
    __slots__ = ("text", "context", "model", "request_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    context: str
    model: str
    request_id: str
    def __init__(self, text: _Optional[str] = ..., context: _Optional[str] = ..., model: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetDraftRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDraftsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDraftsResponse(_message.Message):
    __slots__ = ("drafts", "next_page_token")
    DRAFTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    drafts: _containers.RepeatedCompositeFieldContainer[_draft_pb2.Draft]
    next_page_token: str
    def __init__(self, drafts: _Optional[_Iterable[_Union[_draft_pb2.Draft, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDraftRequest(_message.Message):
    __slots__ = ("name", "prompt", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    prompt: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., prompt: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class BlameRequest(_message.Message):
    __slots__ = ("name", "path", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class BlameResponse(_message.Message):
    __slots__ = ("files", "next_page_token")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_blame_pb2.FileBlame]
    next_page_token: str
    def __init__(self, files: _Optional[_Iterable[_Union[_blame_pb2.FileBlame, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDraftRequest(_message.Message):
    __slots__ = ("name", "etag")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    etag: str
    def __init__(self, name: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...
