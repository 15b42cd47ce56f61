"""Write the shipped easy GSM8K-style word problems: data/word_problems/{train,test}.jsonl.

One- and two-step problems on small numbers (grpo.data.tasks.word_problem), in openai/gsm8k's
columns (``question``, ``answer`` ending "#### N"), so `preset: gsm8k` reads them as it
reads GSM8K itself. The held-out file shares no question with the training file.

    python data/build_word_problems.py        # deterministic: the shipped files again
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grpo.data.tasks import word_problem_splits  # noqa: E402


def main(out: Path = ROOT / "data" / "word_problems", n_train: int = 2000, n_test: int = 500) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    train, test = word_problem_splits(n_train, n_test, seed=0)
    for name, rows in (("train", train), ("test", test)):
        with open(out / f"{name}.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    return out


if __name__ == "__main__":
    print(main())
