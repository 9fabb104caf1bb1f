"""A JSON input with a key given twice in one object (config.json, its quantization_config, measure --from files) is
refused in one line naming the file, the key's path and both values, as a YAML profile's duplicate key is
(tests/test_profiles.py): Python's json, like transformers, would keep the last value in silence."""

from __future__ import annotations

import json

import pytest

from tpplan.files import load_json

LLAMA = '"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32'
FIX = "expected each key once: keep one of the two (JSON readers would silently use the last)"


@pytest.mark.parametrize("body, key, values", [
    (f'{{{LLAMA}, "num_hidden_layers": 40}}', "num_hidden_layers", "first 32, then 40"),
    (f'{{{LLAMA}, "quantization_config": {{"quant_method": "awq", "bits": 4, "bits": 8, "group_size": 128}}}}',
     "quantization_config.bits", "first 4, then 8"),
])
def test_config_json_with_a_duplicate_key_is_refused_naming_file_and_key(tmp_path, refusal, body, key, values):
    path = tmp_path / "config.json"
    path.write_text(body)
    line = f"Error: {path}: {key}: duplicate key in one JSON object ({values}); {FIX}"
    assert refusal("recommend", "--model", str(path)) == line
    assert refusal("models", "show", str(tmp_path)) == line  # a folder holding config.json reads the same file


def test_measure_from_a_file_with_a_duplicate_key_is_refused(tmp_path, refusal):
    path = tmp_path / "raw.json"
    path.write_text('[{"workload": "collectives", "items": [], "workload": "tp_layer"}]')
    assert refusal("measure", "--from", str(path)) == (
        f"Error: {path}: 0.workload: duplicate key in one JSON object (first 'collectives', then 'tp_layer'); {FIX}")


def test_load_json_reads_what_json_reads_and_names_the_first_repeat_in_document_order():
    text = '{"a": [1, {"b": 2}], "c": {"d": null}}'
    assert load_json(text, origin="t") == json.loads(text)
    from tpplan.errors import TpplanError

    repeat = r"^t: x\.1\.a: duplicate key in one JSON object \(first \{'b': 2\}, then 3\)"
    with pytest.raises(TpplanError, match=repeat):
        load_json('{"x": [1, {"a": {"b": 1, "b": 2}, "a": 3}]}', origin="t")
