"""The README's examples must stay true: its plain training loop runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_plain_loop_example_runs(capsys):
    loop = next(b for b in python_blocks() if "MeanTeacher" in b)
    exec(compile(loop, "README.md", "exec"), {})
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    assert len(lines) == 3


def test_readme_first_lines_give_the_two_commands():
    head = README.read_text(encoding="utf-8").splitlines()[:6]
    assert any("quickstart.sh" in ln for ln in head) and any("test.sh" in ln for ln in head)


def test_trainer_example_runs(tmp_path, monkeypatch, capsys):
    example = next(b for b in python_blocks() if "SmartTrainer(" in b)
    monkeypatch.chdir(tmp_path)  # its output_dir "out"
    names = {}
    exec(compile(example, "README.md", "exec"), names)
    trainer = names["trainer"]
    assert trainer.args.smart_method == "smart" and trainer.state.global_step == 3  # 8 examples, batch 8
    assert "eval_loss" in capsys.readouterr().out
