"""The settings tables of docs/OPERATIONS.md and README.md are generated from `Settings`
(`make docs`): they must hold every setting, as server/config.py documents it now."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from server.commands import main
from server.commands._settings import BEGIN, DOCUMENTS, END, settings_docs, settings_table, with_table
from server.config import Settings
from tests._support import ROOT


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_settings_table_is_current(document: str) -> None:
    path = ROOT / document
    text = path.read_text()
    assert with_table(text, settings_table(), path=path) == text, (
        f"the settings table of {document} is stale: run `make docs` and commit the result"
    )


def test_every_setting_is_documented() -> None:
    docs = settings_docs()
    assert [d.name for d in docs] == [f.name for f in dataclasses.fields(Settings)]
    undocumented = [d.name for d in docs if not d.help]
    assert not undocumented, (
        f"settings without a comment right above their field in server/config.py: {undocumented}; "
        "write one, then run `make docs`"
    )
    by_name = {d.name: d for d in docs}
    assert by_name["listen"].variable == "ATELIER_LISTEN" and by_name["listen"].default == "`127.0.0.1:50051`"
    assert by_name["max_prompt_bytes"].default == "`32768` (32 KiB)"
    assert by_name["max_prompt_bytes"].help.endswith("Must be above 0.")
    assert by_name["deleted_retention_seconds"].default == "`604800` (7 days)"
    assert by_name["migrate_on_start"].default == "`true`"
    assert by_name["models"].variable == ""  # [[models]] tables: the config file only


def test_the_command_prints_and_updates_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ATELIER_CONFIG", "ATELIER_PROVIDER", "ATELIER_DEFAULT_MODEL", "ATELIER_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as printed:
        main(["settings"])
    assert printed.value.code == 0
    assert capsys.readouterr().out == settings_table()

    document = tmp_path / "doc.md"
    document.write_text(f"# Settings\n\n{BEGIN}\n| old |\n{END}\n\nafter\n")
    with pytest.raises(SystemExit) as updated:
        main(["settings", "--update", str(document)])
    assert updated.value.code == 0
    assert document.read_text() == f"# Settings\n\n{BEGIN}\n{settings_table()}{END}\n\nafter\n"

    unmarked = tmp_path / "plain.md"
    unmarked.write_text("no markers here\n")
    with pytest.raises(SystemExit) as refused:
        main(["settings", "--update", str(unmarked)])
    assert refused.value.code == 2 and "no settings markers" in capsys.readouterr().err
