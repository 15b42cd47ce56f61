"""Bad data is refused before training, in one line naming the row; odd but valid data is accepted."""
import json
from pathlib import Path

import pytest

from grpo.data import DataError, check_prompt_lengths, load_rows

ROOT = Path(__file__).resolve().parents[2]


def _jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(p)


@pytest.mark.parametrize("prompt,why", [(3, "an int"), (None, "null"), (2.5, "a float"), ({"a": 1}, "a dict"),
                                        ("", "an empty string"), ([], "an empty list"),
                                        ([{"role": "user"}], "without a string role and content"),
                                        (["hi"], "without a string role and content"), (True, "a bool")])
def test_bad_prompt_types_are_refused_naming_the_row(tmp_path, prompt, why):
    src = _jsonl(tmp_path, [{"prompt": "ok", "answer": "1"}, {"prompt": prompt, "answer": "2"}])
    with pytest.raises(DataError, match=rf"row 2 \(1-based\): 'prompt' must be a string or a list of chat messages.*{why}"):
        load_rows(src)


def test_chat_message_prompts_are_accepted(tmp_path):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}]
    rows = load_rows(_jsonl(tmp_path, [{"prompt": chat, "answer": "2"}]))
    assert rows[0]["prompt"] == chat


def test_answer_missing_in_some_rows_is_found_before_training(tmp_path):
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(10)]
    del rows[6]["answer"], rows[8]["answer"]
    with pytest.raises(DataError, match=r"row 7 \(1-based\): reward 'math_accuracy' needs dataset column 'answer'.*2 of 10"):
        load_rows(_jsonl(tmp_path, rows), needs={"math_accuracy": {"answer"}})


def test_rows_with_fewer_optional_columns_get_none(tmp_path):
    rows = load_rows(_jsonl(tmp_path, [{"prompt": "a", "answer": "1", "extra": 5}, {"prompt": "b", "answer": "2"}]))
    assert rows[1]["extra"] is None and set(rows[0]) == set(rows[1])


def test_malformed_jsonl_line_gives_the_real_line_number(tmp_path):
    src = _jsonl(tmp_path, [{"prompt": "a"}, "", "", {"prompt": "b"}, '{"prompt": "c",, }', {"prompt": "d"}])
    with pytest.raises(DataError, match=r"d.jsonl line 5: invalid JSON: .*\(column \d+\)"):
        load_rows(src)
    with pytest.raises(DataError, match=r"line 2: expected a JSON object, got list"):
        load_rows(_jsonl(tmp_path, [{"prompt": "a"}, "[1, 2]"], "e.jsonl"))


def test_non_utf8_and_directory_and_json_array(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"prompt": "a"}\n{"prompt": "\xe9t\xe9"}\n')
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)"):
        load_rows(str(p))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        load_rows(str(tmp_path / "dir.jsonl"))
    q = tmp_path / "a.json"
    q.write_text('[{"prompt": "a"},\n 3]')
    with pytest.raises(DataError, match="item 1 is a int"):
        load_rows(str(q))
    q.write_text('[{"prompt": "a"},\n {"prompt": }]')
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        load_rows(str(q))


def test_csv_empty_cell_is_none_and_strings_stay_strings(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("prompt,answer\nWhat is 3+4?,7\nWhat is x?,\nLeading zero?,007\n")
    rows = load_rows(str(p))
    assert [r["answer"] for r in rows] == ["7", None, "007"]
    from rewards import load
    assert load("math_accuracy")(["q"], ["<answer>7</answer>"], answer=[None]) == [None]


def test_parquet_nan_is_none(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    p = tmp_path / "d.parquet"
    pd.DataFrame({"prompt": ["a", "b"], "answer": [1.0, float("nan")]}).to_parquet(p)
    assert [r["answer"] for r in load_rows(str(p))] == [1.0, None]


def test_preprocess_on_a_row_without_its_column_is_one_line(tmp_path):
    src = _jsonl(tmp_path, [{"question": "a", "answer": "x #### 1"}, {"question": "b"}])
    with pytest.raises(DataError, match=r"row 2 \(1-based\): data.preprocess=gsm8k cannot read it"):
        load_rows(src, preprocess="gsm8k")


class _CharTok:
    """One token per character (as the shipped tiny model's tokenizer), with a BOS."""
    class _Enc:
        def __init__(self, ids):
            self.input_ids = ids

    def __call__(self, text, add_special_tokens=True):
        return self._Enc(([0] if add_special_tokens else []) + [ord(c) for c in text])

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_prompt_lengths_error_drop_truncate():
    render = lambda p: f"User: {p}\nAssistant:"                         # noqa: E731
    rows = [{"prompt": "short"}, {"prompt": "x" * 3000}, {"prompt": "y" * 600}]
    with pytest.raises(DataError, match=r"2 of 3 prompts are longer than the 416 tokens .* row 2 \(1-based\) with 3018"):
        check_prompt_lengths(rows, render, _CharTok(), 512, 96)
    notes = []
    kept = check_prompt_lengths(rows, render, _CharTok(), 512, 96, "drop", log=notes.append)
    assert kept == [{"prompt": "short"}] and "dropped them, 1 rows left" in notes[0]
    cut = check_prompt_lengths(rows, render, _CharTok(), 512, 96, "truncate", log=notes.append)
    assert [len(_CharTok()(render(r["prompt"])).input_ids) for r in cut] == [23, 416, 416]
    chat = [{"prompt": [{"role": "user", "content": "z" * 1000}]}]
    out = check_prompt_lengths(chat, lambda m: m[-1]["content"], _CharTok(), 512, 96, "truncate", log=notes.append)
    assert len(out[0]["prompt"][-1]["content"]) == 415
    assert check_prompt_lengths(rows, render, _CharTok(), None, 96) is rows     # context unknown
    with pytest.raises(DataError, match="leaves no room"):
        check_prompt_lengths(rows, render, _CharTok(), 64, 96)


def test_byte_order_mark_is_accepted_and_one_pretty_object_is_refused(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "answer": "1"}\n')
    assert load_rows(str(p))[0]["prompt"] == "a"
    q = tmp_path / "one.json"
    q.write_text('{\n  "prompt": "a",\n  "answer": "1"\n}\n')
    with pytest.raises(DataError, match="must hold an array of row objects"):
        load_rows(str(q))
    q.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')                    # JSON lines in a .json file
    assert len(load_rows(str(q))) == 2
