"""A word-level tokenizer for the toy language, with a system-less user/assistant chat template.

One token per whitespace-separated word; ``\\boxed{`` and ``}`` are split off so that
``\\boxed{14}`` is three tokens. Decoding joins tokens with spaces (``\\boxed{ 14 }``, which
math-verify reads).
A rendered chat looks like ``<user> how do i bake the cake ? <assistant> sure , ... . <eos>``.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from frpo.toyworld import lexicon, problems

PAD, UNK, EOS, USER, ASSISTANT = "<pad>", "<unk>", "<eos>", "<user>", "<assistant>"
SPECIALS = (PAD, UNK, EOS, USER, ASSISTANT)

# {% generation %} marks the assistant tokens (TRL's assistant_only_loss uses it).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + " {{ message['content'] }} "
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + " "
    "{% generation %}{{ message['content'] }} " + EOS + "{% endgeneration %} "
    "{% else %}{{ raise_exception('toy chat template: only user and assistant roles, got ' "
    "+ message['role']) }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + " {% endif %}"
)


def words() -> list[str]:
    """The full vocabulary in id order: specials first, then the language's words."""
    out = list(SPECIALS)
    for w in lexicon.vocabulary() + problems.vocabulary():
        if w not in out:
            out.append(w)
    return out


_VOCABS: dict[int, dict[str, int]] = {}


def encode_words(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens: the tokenizer's own split and vocabulary
    looked up directly (several times faster than ``tokenizer(text)`` on short strings)."""
    key = id(tokenizer)
    if key not in _VOCABS:
        _VOCABS[key] = tokenizer.get_vocab()
    vocab, unk = _VOCABS[key], tokenizer.unk_token_id
    split = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str
    return [vocab.get(w, unk) for w, _ in split(text)]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The toy tokenizer (deterministic; independent of the world seed)."""
    vocab = {w: i for i, w in enumerate(words())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(r"\\boxed\{|\}"), behavior="isolated"),
        ]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=EOS,
        additional_special_tokens=[USER, ASSISTANT],
        model_max_length=128,
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
