"""`atelier generate --variants/--count`, `atelier batch`, `atelier estimate` and `atelier usage`."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import RunCli
from tests.cli.test_commands import _json


def test_a_fan_out_prints_each_output_as_it_ends_then_all_side_by_side(run_cli: RunCli) -> None:
    batch = _json(run_cli, "generate", "a tiny tool", "--variants", "front,side")
    assert [(v["variant"], v["state"]) for v in batch["versions"]] == [
        ("front", "COMPLETED"),
        ("side", "COMPLETED"),
    ]
    assert batch["counts"]["completed"] == 2 and batch["done"]
    shown = run_cli("generate", "a tiny tool", "--count", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    # One line per output as it ended, then the table with one column per output.
    assert sum("COMPLETED: " in line for line in lines) == 2
    # The table's header: one column per output, in variant order.
    assert any(re.search(r"┃\s*┃\s*1\s*┃\s*2\s*┃", line) for line in lines), shown.stdout
    assert "2/2 done: 2 completed" in shown.stdout
    again = _json(run_cli, "batch", batch["versions"][1]["name"])
    assert again["name"] == batch["name"]
    regenerated = _json(run_cli, "regenerate", batch["versions"][0]["name"], "--count", "2")
    assert [v["kind"] for v in regenerated["versions"]] == ["REGENERATE", "REGENERATE"]


def test_estimate_and_usage(run_cli: RunCli) -> None:
    estimate = _json(run_cli, "estimate", "a tiny tool", "--variants", "front,side,back")
    assert (estimate["outputs"], estimate["calls"], estimate["model"]) == (3, 3, "offline")
    assert estimate["assumptions"]
    text = run_cli("estimate", "a tiny tool", "--count", "2")
    assert text.returncode == 0 and "2 outputs, 2 calls" in text.stdout
    _json(run_cli, "generate", "something to count")
    usage = _json(run_cli, "usage")
    assert {row["principal"] for row in usage["rows"]} == {"alice"} and usage["currency"] == "USD"
    assert _json(run_cli, "usage", "--until", "2000-01-01")["rows"] == []


def test_estimate_prices_the_attached_files(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"notes " * 20)  # 120 bytes of text
    (tmp_path / "sketch.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    attach = ["--attach", "notes.txt", "--attach", "sketch.png"]
    plain = _json(run_cli, "estimate", "a tiny tool", "--count", "2")
    attached = _json(run_cli, "estimate", "a tiny tool", "--count", "2", *attach)
    assert attached["input_tokens"] - plain["input_tokens"] == 2 * (120 // 4 + 258)
    said = [a for a in attached["assumptions"] if a.startswith("2 attachments (")]
    assert said and "1 image or other media file at 258 tokens each, 120 bytes of text" in said[0]
    shown = run_cli("estimate", "a tiny tool", *attach)
    assert shown.returncode == 0 and "- 2 attachments (1 image or other media file" in shown.stdout
    refused = run_cli("estimate", "again", "--regenerate", "v1", *attach)
    assert refused.returncode == 2 and "--attach" in refused.stderr


def test_bad_fan_outs_are_usage_errors(run_cli: RunCli) -> None:
    assert run_cli("generate", "x", "--variants", ",").returncode == 2
    assert run_cli("generate", "x", "--count", "2", "--variants", "a").returncode == 2  # argparse
    refused = run_cli("generate", "x", "--count", "0")
    assert refused.returncode == 2 and "count" in refused.stderr
    assert run_cli("usage", "--since", "yesterday").returncode == 2
