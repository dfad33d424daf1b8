"""Evaluation harnesses with their processes mocked, on results files in the real formats."""

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frpo.harness import capability, codeeval, lmeval, paper_trainer_overrides
from frpo.harness._proc import require_module, run_tool
from frpo.harness.overrides import attention_implementation

FIXTURES = Path(__file__).parent / "fixtures" / "harness"


class FakeRunner:
    """Stands in for subprocess.run: records the command, writes what the tool would write."""

    def __init__(self, write, returncode=0):
        self.write, self.returncode, self.calls = write, returncode, []

    def __call__(self, cmd, env=None, cwd=None, check=False, **streams):
        self.calls.append((cmd, env))
        self.write(cmd)
        return subprocess.CompletedProcess(cmd, self.returncode)


def _arg(cmd, flag):
    return cmd[cmd.index(flag) + 1]


GPU = capability.GPU_NODE
CPU = capability.Capabilities(cuda=False, bf16=False, vllm=False)


def test_lm_eval_command_math500():
    cmd = lmeval.lm_eval_command("/m/grpo", "math500", "/out", tensor_parallel_size=4, caps=GPU)
    assert cmd[:3] == [sys.executable, "-m", "lm_eval"]
    assert _arg(cmd, "--model") == "vllm"
    assert _arg(cmd, "--model_args") == (
        "pretrained=/m/grpo,tensor_parallel_size=4,dtype=bfloat16,"
        "gpu_memory_utilization=0.9,max_gen_toks=2048"
    )
    assert _arg(cmd, "--tasks") == "minerva_math500"
    assert _arg(cmd, "--num_fewshot") == "0"
    assert "--apply_chat_template" in cmd
    assert _arg(cmd, "--system_instruction") == (
        "Please reason step by step, and put your final answer within \\boxed{}."
    )
    assert _arg(cmd, "--gen_kwargs") == "temperature=0"
    assert _arg(cmd, "--output_path") == "/out"
    assert "--confirm_run_unsafe_code" not in cmd and "--device" not in cmd


def test_lm_eval_without_vllm_runs_the_hf_backend_on_cpu():
    """The capability check, not a flag, picks lm-eval's hf backend (the CPU rehearsal)."""
    cmd = lmeval.lm_eval_command(
        "/m", "math500", "/out", max_gen_toks=16, include_path="/tasks", limit=2, caps=CPU
    )
    assert _arg(cmd, "--model") == "hf" and _arg(cmd, "--device") == "cpu"
    assert _arg(cmd, "--model_args") == "pretrained=/m,dtype=float32"
    i = cmd.index("--gen_kwargs")  # the task's own, then the length cap
    assert cmd[i + 1 : i + 3] == ["temperature=0", "max_gen_toks=16"]
    assert _arg(cmd, "--include_path") == "/tasks" and _arg(cmd, "--limit") == "2"


def test_math500_is_scored_by_math_verify(tmp_path):
    """minerva_math500's exact_match only reads "Final Answer: The final answer is ...", so a
    0-shot boxed answer scores 0 there (lm-eval 0.4.13, tasks/minerva_math/utils.py); the score
    read is math_verify."""
    data = json.loads((FIXTURES / "lm_eval_results_math500.json").read_text())
    data["results"]["minerva_math500"].update({"exact_match,none": 0.0, "math_verify,none": 0.5})
    (tmp_path / "r.json").write_text(json.dumps(data))
    got = lmeval.parse_results(tmp_path / "r.json", "math500")
    assert lmeval.score_key("math500") == "frpo/math500/math_verify"
    assert got[lmeval.score_key("math500")] == 0.5
    assert lmeval.score_key("gsm8k_maj8") == "frpo/gsm8k_maj8/maj@8"


def test_humaneval_allows_code_eval_in_its_own_process_only(tmp_path, monkeypatch):
    """lm-eval's humaneval scores through evaluate's code_eval, which raises unless
    HF_ALLOW_CODE_EVAL=1: set for that benchmark's process, not for the others or this one."""
    monkeypatch.setattr(lmeval, "require_module", lambda *a: None)
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)

    def write(cmd):
        out = Path(_arg(cmd, "--output_path")) / "m"
        out.mkdir(parents=True)
        task = _arg(cmd, "--tasks")
        entry = {"pass@1,create_test": 0.25} if task == "humaneval" else {"math_verify,none": 0.5}
        (out / "results_1.json").write_text(json.dumps({"results": {task: entry}}))

    runner = FakeRunner(write)
    got = lmeval.run_lm_eval("/m", ["humaneval", "math500"], tmp_path, runner=runner, caps=CPU)
    assert got == {"frpo/humaneval/pass@1": 0.25, "frpo/math500/math_verify": 0.5}
    (he_cmd, he_env), (_, math_env) = runner.calls
    assert he_env["HF_ALLOW_CODE_EVAL"] == "1" and "--confirm_run_unsafe_code" in he_cmd
    assert "HF_ALLOW_CODE_EVAL" not in math_env
    assert "HF_ALLOW_CODE_EVAL" not in os.environ


def test_lm_eval_command_other_benchmarks():
    mmlu = lmeval.lm_eval_command("/m", "mmlu", "/o")
    assert _arg(mmlu, "--tasks") == "mmlu" and _arg(mmlu, "--num_fewshot") == "5"
    assert "--apply_chat_template" not in mmlu
    he = lmeval.lm_eval_command("/m", "humaneval", "/o", limit=3)
    assert "--confirm_run_unsafe_code" in he and _arg(he, "--limit") == "3"
    gsm = lmeval.lm_eval_command("/m", "gsm8k_maj8", "/o")
    assert _arg(gsm, "--tasks") == "gsm8k_cot_self_consistency" and "--num_fewshot" not in gsm
    with pytest.raises(ValueError, match="unknown benchmark 'bbh'"):
        lmeval.lm_eval_command("/m", "bbh", "/o")
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        lmeval.lm_eval_command("/m", "mmlu", "/o", tensor_parallel_size=0)


def test_parse_lm_eval_results():
    assert lmeval.parse_results(FIXTURES / "lm_eval_results_math500.json", "math500") == {
        "frpo/math500/math_verify": 0.652,
        "frpo/math500/exact_match": 0.644,
    }
    assert lmeval.parse_results(FIXTURES / "lm_eval_results_mmlu.json", "mmlu") == {
        "frpo/mmlu/acc": 0.5412
    }
    assert lmeval.parse_results(FIXTURES / "lm_eval_results_gsm8k_sc.json", "gsm8k_maj8") == {
        "frpo/gsm8k_maj8/maj@8": 0.562
    }
    with pytest.raises(ValueError, match="task 'ifeval' not found"):
        lmeval.parse_results(FIXTURES / "lm_eval_results_mmlu.json", "ifeval")


def test_parse_lm_eval_missing_required_metric(tmp_path):
    data = json.loads((FIXTURES / "lm_eval_results_math500.json").read_text())
    del data["results"]["minerva_math500"]["math_verify,none"]
    (tmp_path / "r.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="metric 'math_verify,none' of task 'minerva_math500'"):
        lmeval.parse_results(tmp_path / "r.json", "math500")


def test_run_lm_eval_end_to_end_with_mocked_process(tmp_path, monkeypatch):
    monkeypatch.setattr(lmeval, "require_module", lambda *a: None)
    fixtures = {
        "minerva_math500": "lm_eval_results_math500.json",
        "mmlu": "lm_eval_results_mmlu.json",
    }

    def write(cmd):  # lm-eval's layout: <output_path>/<sanitized model>/results_<date>.json
        out = Path(_arg(cmd, "--output_path")) / "__m__grpo"
        out.mkdir(parents=True)
        shutil.copy(
            FIXTURES / fixtures[_arg(cmd, "--tasks")], out / "results_2026-11-22T03-00-00.json"
        )

    runner = FakeRunner(write)
    metrics = lmeval.run_lm_eval("/m/grpo", ["math500", "mmlu"], tmp_path, runner=runner)
    assert metrics == {
        "frpo/math500/exact_match": 0.644,
        "frpo/math500/math_verify": 0.652,
        "frpo/mmlu/acc": 0.5412,
    }
    assert [_arg(c, "--tasks") for c, _ in runner.calls] == ["minerva_math500", "mmlu"]
    assert runner.calls[0][1]["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"
    assert _arg(runner.calls[1][0], "--output_path") == str(tmp_path / "mmlu")


def test_failed_process_and_missing_results(tmp_path, monkeypatch):
    monkeypatch.setattr(lmeval, "require_module", lambda *a: None)
    with pytest.raises(RuntimeError, match="exit code 3: .* -m lm_eval"):
        lmeval.run_lm_eval("/m", ["mmlu"], tmp_path, runner=FakeRunner(lambda c: None, 3))
    with pytest.raises(FileNotFoundError, match="no lm-eval results"):
        lmeval.run_lm_eval("/m", ["mmlu"], tmp_path, runner=FakeRunner(lambda c: None))


def test_missing_tool_names_the_extra(tmp_path):
    with pytest.raises(ImportError, match=r"tool-x is not installed: pip install 'frpo\[paper\]'"):
        require_module("frpo_surely_not_a_module", "tool-x")
    if importlib.util.find_spec("lm_eval") is None:  # the CPU environment has no lm-eval
        with pytest.raises(ImportError, match="lm-eval is not installed"):
            lmeval.run_lm_eval("/m", ["mmlu"], tmp_path, runner=FakeRunner(lambda c: None))


def test_run_tool_passes_env_and_no_shell():
    seen = []

    def runner(cmd, env=None, cwd=None, check=False):
        seen.append((cmd, env["FRPO_X"]))
        return subprocess.CompletedProcess(cmd, 0)

    run_tool(["echo", "a b"], env={"FRPO_X": "1"}, runner=runner)
    assert seen == [(["echo", "a b"], "1")]


def test_a_failing_tool_logs_to_a_file_and_shows_its_tail(tmp_path):
    script = "import sys\nfor i in range(30): print('line', i)\nsys.exit(2)"
    with pytest.raises(
        RuntimeError, match=r"(?s)exit code 2: .*last lines of .*tool.log:\nline 15\n.*line 29$"
    ):
        run_tool([sys.executable, "-c", script], log=tmp_path / "tool.log")
    assert (tmp_path / "tool.log").read_text().count("line") == 30


def test_evalplus_command():
    cmd = codeeval.evalplus_command(
        "/m/sft", "mbpp", "/out/evalplus", tensor_parallel_size=2, caps=GPU
    )
    assert cmd == [
        sys.executable,
        "-m",
        "evalplus.evaluate",
        "--model",
        "/m/sft",
        "--dataset",
        "mbpp",
        "--backend",
        "vllm",
        "--greedy",
        "--tp",
        "2",
        "--dtype",
        "bfloat16",
        "--root",
        "/out/evalplus",
    ]
    cpu = codeeval.evalplus_command("/m", "mbpp", "/o", caps=CPU)
    assert _arg(cpu, "--backend") == "hf" and _arg(cpu, "--dtype") == "float32"
    with pytest.raises(ValueError, match="unknown EvalPlus dataset 'apps'"):
        codeeval.evalplus_command("/m", "apps", "/o")


def test_parse_evalplus_results(tmp_path):
    # 4 tasks: base passes 3 (0.75); base and plus both pass 2 (0.5), matching pass_at_k.
    got = codeeval.parse_results(FIXTURES / "evalplus_mbpp_eval_results.json", "mbpp")
    assert got == {"frpo/mbpp_plus/base_pass@1": 0.75, "frpo/mbpp_plus/plus_pass@1": 0.5}
    data = json.loads((FIXTURES / "evalplus_mbpp_eval_results.json").read_text())
    data["pass_at_k"]["plus"]["pass@1"] = 0.6
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="reported plus pass@1 0.6 but statuses give 0.5"):
        codeeval.parse_results(tmp_path / "bad.json", "mbpp")
    (tmp_path / "empty.json").write_text(json.dumps({"eval": {}}))
    with pytest.raises(ValueError, match="no 'eval' entries"):
        codeeval.parse_results(tmp_path / "empty.json", "mbpp")


def test_run_evalplus_with_mocked_process(tmp_path, monkeypatch):
    monkeypatch.setattr(codeeval, "require_module", lambda *a: None)

    def write(cmd):  # evalplus 0.3.1 layout: <root>/<dataset>/<model id>_vllm_temp_0.0_eval_...
        out = Path(_arg(cmd, "--root")) / _arg(cmd, "--dataset")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(
            FIXTURES / "evalplus_mbpp_eval_results.json",
            out / "m--sft_vllm_temp_0.0_eval_results.json",
        )

    runner = FakeRunner(write)
    got = codeeval.run_evalplus("/m/sft", ["mbpp"], tmp_path, runner=runner)
    assert got == {"frpo/mbpp_plus/base_pass@1": 0.75, "frpo/mbpp_plus/plus_pass@1": 0.5}
    assert runner.calls[0][0][-2:] == ["--root", str(tmp_path / "evalplus")]
    assert "MBPP_OVERRIDE_PATH" not in runner.calls[0][1]
    local = tmp_path / "MbppPlus.jsonl"
    local.write_text("")
    codeeval.run_evalplus("/m/sft", ["mbpp"], tmp_path, runner=runner, data_files={"mbpp": local})
    assert runner.calls[1][1]["MBPP_OVERRIDE_PATH"] == str(local)
    with pytest.raises(ValueError, match="mbpp data file .*nope.jsonl does not exist"):
        codeeval.run_evalplus("/m", ["mbpp"], tmp_path, data_files={"mbpp": "/nope.jsonl"})


def test_paper_trainer_overrides_are_grpo_config_fields(tmp_path):
    from trl import GRPOConfig

    from frpo.harness.capability import GPU_NODE

    over = paper_trainer_overrides(8, vllm_tensor_parallel_size=2, caps=GPU_NODE)
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(over) <= fields
    assert over["use_vllm"] is True and over["vllm_mode"] == "colocate" and over["bf16"] is True
    # flash-attn where it imports, else SDPA (this machine: no flash-attn, no GPU)
    assert over["model_init_kwargs"]["attn_implementation"] == attention_implementation()
    assert over["gradient_checkpointing"] is True
    # GRPOConfig accepts every value (bf16 switched off only because this machine has no GPU).
    cfg = GRPOConfig(output_dir=str(tmp_path), **{**over, "bf16": False})
    assert cfg.vllm_tensor_parallel_size == 2 and cfg.vllm_gpu_memory_utilization == 0.3
    with pytest.raises(ValueError, match="must divide n_gpus=4"):
        paper_trainer_overrides(4, vllm_tensor_parallel_size=3)
    with pytest.raises(ValueError, match="n_gpus must be >= 1"):
        paper_trainer_overrides(0)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        paper_trainer_overrides(1, vllm_gpu_memory_utilization=1.5)
