"""Trains tiny models with ``SmartTrainer`` under ``torchrun`` (or as one plain process) for
``tests/test_distributed.py``: each process writes its final student and mean-teacher weights.

usage: torchrun --standalone --nproc_per_node N tests/ddp_worker.py OUT GLOBAL_BATCH NAME=OPTIONS ...

For every ``NAME=OPTIONS`` (a JSON object of ``SmartTrainingArguments`` fields, plus
``"fixed_perturbation": true`` for the deterministic stand-in of R_s from conftest), trains a tiny BERT
(dropout 0, fixed initial weights) for 6 optimizer steps on a fixed toy data set with a global batch of
GLOBAL_BATCH (GLOBAL_BATCH / N per process), then writes ``OUT/NAME/student-rank<R>.safetensors``,
``OUT/NAME/teacher-rank<R>.safetensors`` (when the method has a teacher) and, on rank 0,
``OUT/NAME/eval.json`` (the Trainer's evaluation on the whole eval set, and its log).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FixedPerturbation, ToyDataset, tiny_model  # noqa: E402
from smart_tune import SmartTrainer, SmartTrainingArguments  # noqa: E402


def accuracy(prediction) -> dict[str, float]:
    logits, labels = prediction
    return {"accuracy": float((np.argmax(logits, -1) == labels).mean()), "n": float(len(labels))}


def main() -> None:
    out, global_batch = Path(sys.argv[1]), int(sys.argv[2])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(1)
    train_set = ToyDataset(n=48, seed=1)
    eval_set = ToyDataset(n=37, seed=2)  # not a multiple of any batch: the last batch is padded
    for spec in sys.argv[3:]:
        name, options = spec.split("=", 1)
        options = json.loads(options)
        fixed_perturbation = options.pop("fixed_perturbation", False)
        folder = out / name
        args = SmartTrainingArguments(
            output_dir=str(folder),
            per_device_train_batch_size=global_batch // world,
            per_device_eval_batch_size=5,
            max_steps=6,
            learning_rate=1e-3,
            warmup_steps=0,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=0,
            **options,
        )
        trainer = SmartTrainer(
            model=tiny_model(seed=0),
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            compute_metrics=accuracy,
        )
        if fixed_perturbation:
            trainer.regularizer = FixedPerturbation()
        trainer.train()
        scores = trainer.evaluate()
        student = trainer.accelerator.unwrap_model(trainer.model)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in student.state_dict().items()},
            folder / f"student-rank{rank}.safetensors",
        )
        if trainer.teacher is not None:
            teacher = {k: v.contiguous() for k, v in trainer.teacher.state_dict()["model"].items()}
            save_file(teacher, folder / f"teacher-rank{rank}.safetensors")
        if rank == 0:
            (folder / "eval.json").write_text(
                json.dumps({**scores, "log_history": trainer.state.log_history})
            )


if __name__ == "__main__":
    main()
