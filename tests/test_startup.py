"""`smart-tune --help` and `--version` answer without importing torch or transformers; the heavy imports
happen inside the commands that need them."""

import re
import subprocess
import sys

import pytest

from smart_tune.cli import main

HEAVY = ("torch", "transformers", "datasets", "accelerate", "sklearn", "matplotlib")


def modules_loaded_by(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def test_help_and_version_import_neither_torch_nor_transformers():
    # The console script `smart-tune` is smart_tune.cli:main; `python -m smart_tune` runs the same.
    assert modules_loaded_by("from smart_tune.cli import main\nmain(['--help'])\nmain(['--version'])") == []
    assert modules_loaded_by("import smart_tune.cli") == []
    for command in ("evaluate", "predict", "report"):
        code = f"from smart_tune.cli import main\ntry:\n    main(['{command}', '--help'])\nexcept SystemExit:\n    pass"
        assert modules_loaded_by(code) == [], command


def test_the_package_still_exports_its_names():
    code = (
        "import smart_tune\n"
        "from smart_tune import SmartTrainer, SmartTrainingArguments, MeanTeacher, AdversarialRegularizer\n"
        "assert set(smart_tune.__all__) <= set(dir(smart_tune))\n"
        "assert all(getattr(smart_tune, name) is not None for name in smart_tune.__all__)"
    )
    assert "torch" in modules_loaded_by(code)


def test_train_help_shows_defaults_and_the_method_precedence(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default 42)" in text and "(default runs/TASK-METHOD-seedSEED)" in text
    for flag in ("lambda", "epsilon", "sigma", "eta", "mu", "beta", "dropout", "teacher-dropout"):
        help_ = re.search(rf"--smart-{flag} SMART_\w+ (.*?)(?= --|$)", text).group(1)
        assert "(default " in help_, flag
    assert "--smart-method is the same choice" in text and "different values is an error" in text
