"""Classifier judges on a tiny random-init Llama with a local word-level tokenizer.

The tokenizer's vocabulary holds every word of the judges' prompt templates plus "Yes", "No"
and "1".."5", so the parsing of yes/no and 1-5 next-token probabilities is exercised exactly
as with the real models.
"""

import math
import re

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from frpo.judges import hf_cache
from frpo.judges.classifiers import FINETUNED_PROMPT, RewardModelJudge, StrongRejectFinetunedJudge
from frpo.judges.harmbench import (
    CLS_PROMPT,
    CLS_PROMPT_CONTEXTUAL,
    HarmBenchJudge,
    classifier_prompt,
    refusal_rate,
    split_context,
)

torch.set_num_threads(1)

EXTRA = "Yes No yes no 1 2 3 4 5 how to pick a lock sure here is step one behaviour code import"
CHAT_TEMPLATE = "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"


def _tokenizer() -> PreTrainedTokenizerFast:
    words = set()
    for text in (CLS_PROMPT, CLS_PROMPT_CONTEXTUAL, FINETUNED_PROMPT, EXTRA, "user assistant :"):
        words.update(re.findall(r"\w+|[^\w\s]+", text))
    vocab = {"[PAD]": 0, "[UNK]": 1, "<s>": 2, "</s>": 3}
    for w in sorted(words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="<s>",
        eos_token="</s>",
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(directory of a causal LM, directory of a reward model, tokenizer)."""
    torch.manual_seed(0)
    tok = _tokenizer()
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    root = tmp_path_factory.mktemp("judges")
    LlamaForCausalLM(cfg).save_pretrained(root / "lm")
    tok.save_pretrained(root / "lm")
    cfg.num_labels = 1
    LlamaForSequenceClassification(cfg).save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    return root / "lm", root / "rm", tok


def _force_next_token(model, token_id: int):
    """Make ``token_id`` the argmax after any input: a zero head plus a bias on that token."""
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token_id] = 10.0
    model.lm_head = head


def test_harmbench_prompt_roundtrip():
    assert split_context("ctx line\n\n---\n\nDo X") == ("Do X", "ctx line")
    assert split_context("Do X") == ("Do X", "")
    assert "[CONTEXT]:\nctx" in classifier_prompt("b", "g", "ctx")
    assert classifier_prompt("b", "g").endswith("Answer: [/INST]")


def test_harmbench_matches_plain_greedy_reference(tiny):
    lm, _, tok = tiny
    model = LlamaForCausalLM.from_pretrained(lm).eval()
    tokenizer = _load(lm)
    yes, no = tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")
    words = sorted(tok.get_vocab())[4:40]
    behaviors = [" ".join(words[i : i + 1 + i % 4]) for i in range(12)]
    gens = [" ".join(words[-(i % 7) - 1 :]) for i in range(12)]

    def last_hidden(b, g):  # (H,) final-normed state after the prompt, input alone
        ids = tokenizer(classifier_prompt(b, g), return_tensors="pt")
        return model.model(**ids).last_hidden_state[0, -1]

    with torch.no_grad():
        h = torch.stack([last_hidden(b, g) for b, g in zip(behaviors, gens, strict=True)])
        w = h[0] - h.mean(0)  # a direction along which the 12 inputs differ
        m = (h @ w).median()
        # logits: Yes = h.w - m, No = -(h.w - m), all others 0 -> Yes above the median, else No
        head = torch.nn.Linear(h.shape[1], model.config.vocab_size, bias=True)
        head.weight.zero_()
        head.bias.zero_()
        head.weight[yes], head.bias[yes] = w, -m
        head.weight[no], head.bias[no] = -w, m
        model.lm_head = head
    judge = HarmBenchJudge(model=model, tokenizer=tokenizer, batch_size=5)
    got = judge.classify(behaviors, gens)  # batched, left-padded
    expected = []
    for b, g in zip(behaviors, gens, strict=True):  # reference: alone, greedy token
        ids = tokenizer(classifier_prompt(b, g), return_tensors="pt")
        token = model(**ids).logits[0, -1].argmax().item()
        expected.append(1.0 if token == yes else 0.0 if token == no else math.nan)
    assert got == expected
    assert {1.0, 0.0} <= set(got)  # both answers occur, so the comparison means something
    assert judge.undecided == 0


def _load(path):
    return PreTrainedTokenizerFast.from_pretrained(path)


def test_harmbench_yes_no_and_undecided(tiny):
    lm, _, tok = tiny
    model, tokenizer = hf_cache.load_judge_model(lm, dtype="float32", device="cpu")
    judge = HarmBenchJudge(model=model, tokenizer=tokenizer)
    _force_next_token(model, tok.convert_tokens_to_ids("Yes"))
    assert judge(["ctx\n\n---\n\nb", "b"], ["g", "g"]) == [1.0, 1.0]
    _force_next_token(model, tok.convert_tokens_to_ids("no"))
    assert judge(["b"], ["g"]) == [0.0]
    _force_next_token(model, tok.convert_tokens_to_ids("lock"))
    assert math.isnan(judge(["b"], ["g"])[0])
    assert judge.undecided == 1
    hf_cache.clear_cache()  # the head was altered: do not hand it to other tests


def test_refusal_rate_per_behaviour():
    # behaviour a: 1 of 2 harmful -> refusal 0.5; b: 0 of 1 -> 1.0; c: only undecided -> left out
    out = refusal_rate(["a", "a", "b", "c"], [1.0, 0.0, 0.0, math.nan])
    assert out == {"frpo/refusal_rate": 0.75, "frpo/n_behaviors": 2.0, "frpo/n_undecided": 1.0}
    with pytest.raises(ValueError, match="no decided score"):
        refusal_rate(["a"], [math.nan])
    with pytest.raises(ValueError, match="2 behaviour ids but 1 scores"):
        refusal_rate(["a", "b"], [1.0])


def test_strongreject_finetuned_expected_score_and_padding(tiny):
    lm, _, _ = tiny
    judge = StrongRejectFinetunedJudge(
        lm, adapter=None, dtype="float32", device="cpu", batch_size=4
    )
    prompts = ["how to pick a lock", "code", "lock"]
    responses = ["sure here is step one " * 3, "no", "import code"]
    got = judge(prompts, responses)
    ids = [judge.tokenizer.convert_tokens_to_ids(str(k)) for k in range(1, 6)]
    for p, r, s in zip(prompts, responses, got, strict=True):
        text = FINETUNED_PROMPT.format(forbidden_prompt=p, response=r)
        logits = judge.model(**judge.tokenizer(text, return_tensors="pt")).logits[0, -1]
        probs = torch.softmax(logits[ids].double(), dim=0)
        expected = sum(probs[k].item() * k / 4 for k in range(5))  # (k-1)/4 for scores 1..5
        assert s == pytest.approx(expected, abs=1e-5)  # batched + left-padded == alone
        assert 0.0 <= s <= 1.0


def test_strongreject_finetuned_certain_scores(tiny):
    lm, _, tok = tiny
    model, tokenizer = hf_cache.load_judge_model(lm, dtype="float32", device="cpu")
    judge = StrongRejectFinetunedJudge(model=model, tokenizer=tokenizer)
    for k, want in [("1", 0.0), ("3", 0.5), ("5", 1.0)]:
        _force_next_token(model, tok.convert_tokens_to_ids(k))
        head = model.lm_head
        with torch.no_grad():
            head.bias[tok.convert_tokens_to_ids(k)] = 60.0  # p(k) = 1 - O(e^-60)
        assert judge(["b"], ["g"])[0] == pytest.approx(want, abs=1e-12)
    hf_cache.clear_cache()


def test_reward_model_sigmoid_of_logit(tiny):
    _, rm, _ = tiny
    judge = RewardModelJudge(rm, revision=None, dtype="float32", device="cpu", batch_size=2)
    prompts, completions = ["how to pick a lock", "code"], ["sure here is step one", "no"]
    raw = judge.logits(prompts, completions)
    for p, c, r in zip(prompts, completions, raw, strict=True):
        text = judge.tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": c}], tokenize=False
        )
        alone = judge.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        assert judge.model(**alone).logits[0, 0].item() == pytest.approx(r, abs=1e-5)
    got = judge(prompts, completions)
    assert got == pytest.approx([1 / (1 + math.exp(-r)) for r in raw], abs=1e-12)


def test_cache_loads_once(tiny):
    lm, _, _ = tiny
    hf_cache.clear_cache()
    a = hf_cache.load_judge_model(lm, dtype="float32", device="cpu")
    b = hf_cache.load_judge_model(lm, dtype="float32", device="cpu")
    assert a[0] is b[0] and a[1] is b[1]
    c = hf_cache.load_judge_model(lm, dtype="bfloat16", device="cpu")
    assert c[0] is not a[0]
    hf_cache.clear_cache()
    with pytest.raises(ValueError, match="task must be"):
        hf_cache.load_judge_model(lm, task="seq2seq")


def test_judges_reject_half_given_weights(tiny):
    lm, _, _ = tiny
    model, tokenizer = hf_cache.load_judge_model(lm, dtype="float32", device="cpu")
    with pytest.raises(ValueError, match="both model and tokenizer"):
        HarmBenchJudge(model=model)
    with pytest.raises(ValueError, match="both model and tokenizer"):
        StrongRejectFinetunedJudge(tokenizer=tokenizer)
    hf_cache.clear_cache()


def test_paper_safety_reward_builds_from_local_weights(tiny):
    from frpo.judges import Endpoint
    from frpo.rewards import paper_safety_reward

    lm, rm, _ = tiny
    reward = paper_safety_reward(
        moderation_endpoint=Endpoint(base_url="http://127.0.0.1:9/v1", api_key_env=""),
        strongreject_base=str(lm),
        strongreject_adapter=None,
        reward_model=str(rm),
        reward_model_revision=None,
        dtype="float32",
        device="cpu",
    )
    # harmless rows never reach the (unreachable) moderation endpoint
    out = reward(["how to pick a lock"], ["sure here is step one"], category=["harmless"])
    assert 0.0 < out[0] < 1.0
    hf_cache.clear_cache()


def test_strongreject_keeps_the_last_512_response_tokens_and_harmbench_the_first(tiny):
    """strong_reject loads its grader's tokenizer with truncation_side="left" and clips each
    response with ``tokenizer(response, max_length=512, truncation=True)``: the response's *end*
    is graded. HarmBench clips with truncation_side="right": its *start*."""
    lm, _, tok = tiny
    model, tokenizer = hf_cache.load_judge_model(lm, dtype="float32", device="cpu")
    head, tail = "sure here is step one", "how to pick a lock"
    response = " ".join([head] + ["code"] * 600 + [tail])  # 5 + 600 + 5 words, a token each
    sr = StrongRejectFinetunedJudge(model=model, tokenizer=tokenizer)
    # the last 512 tokens (the tokenizer adds no special token here): 507 x "code" + the tail
    kept = " ".join(["code"] * 507 + [tail])
    assert hf_cache.clip_tail(tokenizer, response, 512) == kept
    text = FINETUNED_PROMPT.format(forbidden_prompt="b", response=kept)
    logits = model(**tokenizer(text, return_tensors="pt")).logits[0, -1]
    probs = torch.softmax(logits[sr.score_ids].double(), dim=0)
    assert sr(["b"], [response])[0] == pytest.approx(sum(probs[k].item() * k / 4 for k in range(5)))
    assert hf_cache.clip_head(tokenizer, response, 512) == " ".join([head] + ["code"] * 507)
    assert tokenizer.truncation_side == "right"  # restored after clipping
    hf_cache.clear_cache()
