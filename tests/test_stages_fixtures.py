"""Local stand-ins for the stage-runner tests: a tiny model and real-format data files.

- ``build_model(dirpath)``: a tiny Qwen2 model (random init, fixed seed) with a word-level
  tokenizer whose vocabulary covers the words, digits and ``####`` of the data below.
- ``write_alpaca(path, n)``: an Alpaca-format JSON list of ``{instruction, input, output}``.
- ``write_gsm8k(path, n)``: a GSM8K-format JSONL of ``{question, answer}``, answers ending
  ``#### N``.
- ``files_source(tmp)``: a ``Source(kind="files")`` over all three (built once per directory).

Nothing is downloaded. The tests at the bottom check the files really are in those formats.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

WORDS = [
    "apple", "river", "stone", "cloud", "green", "blue", "seven", "north", "quiet", "lamp",
    "tree", "sand", "fire", "wind", "glass", "paper", "moon", "salt", "bread", "wolf",
    "add", "count", "the", "and", "what", "is",
]  # fmt: skip
DIGITS = [str(d) for d in range(10)]
SPECIALS = ["<pad>", "<unk>", "<eos>"]
ROLE = ["user", "assistant", ":", "####"]
TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : {{ message['content'] }} "
    "{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)


def build_model(dirpath, seed: int = 0, hidden: int = 32, layers: int = 2) -> str:
    """Save a tiny Qwen2 model + word-level tokenizer to ``dirpath``; returns the path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab = {t: i for i, t in enumerate(SPECIALS + ROLE + WORDS + DIGITS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="@@cont@@", cleanup=False)  # joins with spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    )
    tok.chat_template = TEMPLATE
    config = Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(dirpath)
    tok.save_pretrained(dirpath)
    return str(dirpath)


def write_alpaca(path, n: int = 40, seed: int = 0) -> str:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.sample(WORDS[:20], 2)
        rows.append(
            {
                "instruction": f"what is {a} and {b}",
                "input": "" if i % 3 else f"{rng.choice(WORDS[:20])} tree",
                "output": f"{b} {a} moon",
            }
        )
    Path(path).write_text(json.dumps(rows, indent=1))
    return str(path)


def write_gsm8k(path, n: int = 40, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        x, y = rng.randint(0, 4), rng.randint(0, 4)
        lines.append(
            json.dumps({"question": f"add {x} and {y}", "answer": f"{x} and {y} #### {x + y}"})
        )
    Path(path).write_text("\n".join(lines) + "\n")
    return str(path)


def files_source(tmp: Path):
    """A files Source over a tiny model, an Alpaca JSON and a GSM8K JSONL in ``tmp``."""
    from frpo.stages.spec import Source

    tmp = Path(tmp)
    model = tmp / "base"
    if not (model / "config.json").is_file():
        build_model(model)
        write_alpaca(tmp / "alpaca.json")
        write_gsm8k(tmp / "gsm8k.jsonl")
    return Source(
        kind="files",
        model=str(model),
        data=(("alpaca", str(tmp / "alpaca.json")), ("gsm8k", str(tmp / "gsm8k.jsonl"))),
    )


def test_alpaca_file_is_alpaca_format(tmp_path):
    rows = json.loads(Path(write_alpaca(tmp_path / "a.json", n=6)).read_text())
    assert len(rows) == 6
    assert all(set(r) == {"instruction", "input", "output"} for r in rows)
    assert rows[0]["input"] != "" and rows[1]["input"] == ""


def test_gsm8k_file_is_gsm8k_format(tmp_path):
    lines = Path(write_gsm8k(tmp_path / "g.jsonl", n=5)).read_text().splitlines()
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"question", "answer"}
        x, y = (int(t) for t in row["question"].split()[1::2])
        assert row["answer"].endswith(f"#### {x + y}")


def test_tokenizer_round_trips_the_data(tmp_path):
    from frpo.stages.backend import load_tokenizer

    tok = load_tokenizer(build_model(tmp_path / "m"))
    ids = tok("add 3 and 4 #### 7", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == "add 3 and 4 #### 7"
