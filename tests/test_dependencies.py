"""The library needs only the ML stack; the command line names its extra when it is missing."""

import subprocess
import sys
import textwrap

# The [cli] extra's packages (pyyaml comes with transformers' huggingface_hub, so it stays).
HIDDEN = ("datasets", "sklearn", "scipy", "matplotlib")


def run_without_cli_extra(code: str) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in HIDDEN)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )


def test_the_library_trains_without_the_cli_extra(tmp_path):
    proc = run_without_cli_extra(
        f"""
        import sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from conftest import ToyDataset, tiny_model
        from smart_tune import SmartTrainer, SmartTrainingArguments
        args = SmartTrainingArguments(output_dir={str(tmp_path)!r}, max_steps=2, use_cpu=True, report_to="none",
                                      save_strategy="no", per_device_train_batch_size=4, disable_tqdm=True)
        SmartTrainer(model=tiny_model(), args=args, train_dataset=ToyDataset()).train()
        assert not [m for m in {HIDDEN!r} if sys.modules.get(m)]
        print("trained")
        """
    )
    assert proc.returncode == 0 and "trained" in proc.stdout, proc.stderr[-2000:]


def test_the_command_line_without_its_extra_says_which_in_one_line():
    proc = run_without_cli_extra(
        """
        from smart_tune.cli import main
        raise SystemExit(main(["train", "--task", "rte"]))
        """
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "smart-tune[cli]" in lines[0] and "datasets" in lines[0]
