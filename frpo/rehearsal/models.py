"""Tiny random stand-ins of the paper's models, saved as model directories (weights, config,
tokenizer, chat template), each in the architecture and with the head the real one has.

========================================  ===============================  ====================
paper model                               stand-in                         read through
========================================  ===============================  ====================
mistralai/Mistral-7B-Instruct-v0.1        MistralForCausalLM, [INST] chat  the policy (safety)
Qwen/Qwen2.5-Math-7B                      Qwen2ForCausalLM, ChatML chat    the policy (math)
cais/HarmBench-Llama-2-13b-cls            LlamaForCausalLM                 HarmBench yes/no
google/gemma-2b + qylu4156/strongreject-  GemmaForCausalLM + a LoRA        StrongREJECT 1-5
15k-v1                                    adapter (peft)                   next-token scores
allenai/Llama-3.1-8B-Instruct-RM-RB2      LlamaForSequenceClassification   the reward model
(revision "2")                            (1 label), Llama 3 chat
========================================  ===============================  ====================

All share one byte-level BPE vocabulary trained on the stand-in data (:mod:`.content`), each
with its family's special tokens and chat template (written here, in each family's format). The
HarmBench stand-in's output layer is zero except on its "yes"/"no" tokens (opposite rows), so
its next token is always one of the two: the classifier's verdicts are decided, as a trained
classifier's are (a random model's verdict is mostly the same for every input).
"""

from __future__ import annotations

from pathlib import Path

import torch

HIDDEN, LAYERS, HEADS, KV_HEADS, MAX_POSITIONS = 32, 2, 4, 2, 4096
VOCAB = 1024

# chat templates in each family's format (Jinja, as tokenizers ship them)
INST_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}"
    "{% else %}{{ raise_exception('only user and assistant turns are supported') }}"
    "{% endif %}{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
    "'<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
FAMILIES = {  # special tokens (bos, eos, unk, pad), extra specials, chat template, adds bos
    "mistral": (("<s>", "</s>", "<unk>", None), (), INST_TEMPLATE, True),
    "qwen2": ((None, "<|endoftext|>", None, "<|endoftext|>"), ("<|im_start|>", "<|im_end|>"),
              CHATML_TEMPLATE, False),
    "llama2": (("<s>", "</s>", "<unk>", None), (), None, True),
    "gemma": (("<bos>", "<eos>", "<unk>", "<pad>"), (), None, True),
    "llama3": (("<|begin_of_text|>", "<|eot_id|>", None, None),
               ("<|start_header_id|>", "<|end_header_id|>"), LLAMA3_TEMPLATE, True),
}  # fmt: skip


def bpe_core(texts: list[str], vocab_size: int = VOCAB):
    """A byte-level BPE tokenizer model trained on ``texts`` (every byte is in the alphabet,
    so any text encodes; "yes"/"no" and the digits are single tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    answers = ["yes no Yes No", " yes", " no", " Yes", " No"] * 200  # the classifiers' answers
    core.train_from_iterator(list(texts) + answers, trainer)
    return core


def family_tokenizer(core_json: str, family: str):
    """The family's ``PreTrainedTokenizerFast`` on a copy of the trained BPE (``core.to_str()``)."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    (bos, eos, unk, pad), extra, template, adds_bos = FAMILIES[family]
    core = Tokenizer.from_str(core_json)
    specials = [t for t in (bos, eos, unk, pad, *extra) if t is not None]
    core.add_special_tokens(list(dict.fromkeys(specials)))
    if adds_bos:
        bos_id = core.token_to_id(bos)
        core.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        pad_token=pad,
        additional_special_tokens=list(extra) or None,
    )
    if template is not None:
        tok.chat_template = template
    return tok


def _config(cls_name: str, tok, **extra):
    import transformers

    cls = getattr(transformers, cls_name)
    kw = dict(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    kw.update(extra)
    return cls(**kw)


def save_causal(out: Path, tok, arch: str, seed: int, **config) -> Path:
    """A random ``<arch>ForCausalLM`` (Mistral, Qwen2, Llama, Gemma) and ``tok`` in ``out``."""
    import transformers

    cfg = _config(f"{arch}Config", tok, **config)
    torch.manual_seed(seed)
    model = getattr(transformers, f"{arch}ForCausalLM")(cfg)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id = tok.bos_token_id, tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)


def save_harmbench(out: Path, tok, seed: int) -> Path:
    """The HarmBench classifier stand-in: a Llama causal LM whose output layer is zero except
    on the yes/no tokens (rows v and -v), so its greedy next token is "yes" or "no"."""
    from transformers import LlamaForCausalLM

    from frpo.judges.harmbench import _answer_ids

    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config("LlamaConfig", tok))
    yes, no = _answer_ids(tok, "yes"), _answer_ids(tok, "no")
    if not yes or not no:
        raise ValueError("the stand-in vocabulary has no yes/no token")
    with torch.no_grad():
        v = torch.randn(HIDDEN)
        head = model.lm_head.weight  # (V, H)
        head.zero_()
        head[sorted(yes)] = v
        head[sorted(no)] = -v
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)


def save_strongreject_adapter(out: Path, base_dir: Path, tok, base_id: str, seed: int) -> Path:
    """A LoRA adapter (random, non-zero) on the Gemma stand-in, saved with the tokenizer as the
    real adapter repository is; ``base_model_name_or_path`` names ``base_id``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                     task_type="CAUSAL_LM", init_lora_weights=False)  # fmt: skip
    peft_model = get_peft_model(base, cfg)
    peft_model.peft_config["default"].base_model_name_or_path = base_id
    peft_model.save_pretrained(out, save_embedding_layers=False)
    tok.save_pretrained(out)
    return Path(out)


def save_reward_model(out: Path, tok, seed: int) -> Path:
    """The RB2 stand-in: a Llama sequence classifier with one label (the reward)."""
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(_config("LlamaConfig", tok, num_labels=1))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)
