"""`models list` and `profiles list` at 80 columns (a pipe, a CI log): names users type are never cut."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tpplan.report.text import Column, table_lines


@pytest.fixture
def eighty(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def test_models_list_keeps_every_name_and_alias_whole_at_80_columns(run_cli, eighty):
    rows = run_cli("models", "list", "-f", "json").json()
    out = run_cli("models", "list").out
    lines = out.splitlines()
    assert "…" not in out and "..." not in out and all(len(ln) <= 80 for ln in lines)
    starts = {ln.split(" ")[0] for ln in lines}
    assert {r["name"] for r in rows} <= starts  # each name whole, at the start of its row
    words = {w.rstrip(",") for ln in lines for w in ln.split()}
    assert {a for r in rows for a in r["aliases"]} <= words  # aliases wrap between names, never inside one
    assert " ".join(lines[-2:]) == ("(layers, heads / kv, context left out at 80 columns; widen the terminal, set "
                                    "COLUMNS, or use -f json)")


def test_models_list_shows_every_column_when_there_is_room(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    lines = run_cli("models", "list").out.splitlines()
    assert lines[1].split() == ["name", "params", "active", "layers", "heads", "/", "kv", "context", "aliases"]
    assert "left out" not in lines[-1]


def test_profiles_list_keeps_every_name_whole_at_80_columns(run_cli, eighty, tmp_path, monkeypatch):
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "hardware_profiles" / "dgx-h100.yaml").read_text())
    base["name"] = "our-h100-cluster-in-the-west-datacentre"
    (tmp_path / "ours.yaml").write_text(yaml.safe_dump(base))
    monkeypatch.setenv("TPPLAN_PROFILE_PATH", str(tmp_path))
    rows = run_cli("profiles", "list", "-f", "json").json()
    out = run_cli("profiles", "list").out
    assert "…" not in out and "..." not in out
    assert {r["name"] for r in rows} <= {ln.split(" ")[0] for ln in out.splitlines()}
    assert "our-h100-cluster-in-the-west-datacentre" in {r["name"] for r in rows}


def test_a_wrapping_column_narrows_between_words_and_other_columns_keep_their_width():
    cols = [Column(header="name", priority=0, align="<"), Column(header="n", priority=2),
            Column(header="aliases", priority=1, align="<", wrap=True)]
    rows = [["a-very-long-model-name", "12", "alpha-one, beta-two, gamma-three"]]
    assert table_lines(cols, rows, 40) == [
        "name                    n aliases",
        "---------------------- -- --------------",
        "a-very-long-model-name 12 alpha-one,",
        "                          beta-two,",
        "                          gamma-three",
    ]
    assert table_lines(cols, rows, None)[2] == "a-very-long-model-name 12 alpha-one, beta-two, gamma-three"
    # too narrow for the number too: it gives way first; nothing is cut
    assert table_lines(cols, rows, 35)[2:] == ["a-very-long-model-name alpha-one,", " " * 23 + "beta-two,",
                                               " " * 23 + "gamma-three"]
    assert table_lines(cols, rows, 30)[2:] == ["a-very-long-model-name"]  # the aliases' longest word does not fit
