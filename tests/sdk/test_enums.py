"""The SDK's enums are its own public types, but they mirror the proto's: they must not drift apart."""

from __future__ import annotations

import enum
import importlib
import pkgutil
import re

import atelier
import atelier.v1
import pytest
from google.protobuf.descriptor import EnumDescriptor

# `None` stands for UNSPECIFIED in these (for MergeStrategy: report the conflicts), so the SDK
# leaves that member out.
_NONE_IS_UNSPECIFIED = {"MergeStrategy"}


def _sdk_enums() -> list[type[enum.Enum]]:
    exported = [getattr(atelier, name) for name in atelier.__all__]
    return [value for value in exported if isinstance(value, type) and issubclass(value, enum.Enum)]


def _proto_enums() -> dict[str, EnumDescriptor]:
    """Every top-level enum of the generated atelier.v1 modules, by name."""
    found: dict[str, EnumDescriptor] = {}
    for module_info in pkgutil.iter_modules(atelier.v1.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"atelier.v1.{module_info.name}")
            found.update(module.DESCRIPTOR.enum_types_by_name)
    return found


def _prefix(enum_name: str) -> str:
    """The prefix of an enum's values (buf's ENUM_VALUE_PREFIX): VersionState -> VERSION_STATE_."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"


def test_every_sdk_enum_has_its_proto_enum() -> None:
    sdk = {cls.__name__ for cls in _sdk_enums()}
    assert len(sdk) >= 7  # the finder finds them all
    assert sdk <= set(_proto_enums()), sorted(sdk - set(_proto_enums()))


@pytest.mark.parametrize("sdk_enum", _sdk_enums(), ids=lambda cls: cls.__name__)
def test_an_sdk_enum_has_the_proto_enum_s_members(sdk_enum: type[enum.Enum]) -> None:
    descriptor = _proto_enums()[sdk_enum.__name__]
    prefix = _prefix(descriptor.name)
    assert all(value.name.startswith(prefix) for value in descriptor.values)
    wire = [value.name.removeprefix(prefix) for value in descriptor.values]
    if sdk_enum.__name__ in _NONE_IS_UNSPECIFIED:
        wire.remove("UNSPECIFIED")
    # The names and the values: the conversions look a member up by its value (_convert._enum).
    assert [member.name for member in sdk_enum] == wire
    assert [member.value for member in sdk_enum] == wire
