"""Pairing: with one seed, every method trains on the same batches in the same order, every epoch."""

import pytest
import torch

from conftest import ToyDataset, tiny_model
from smart_tune import SmartTrainer, SmartTrainingArguments
from smart_tune.trainer import SeededLengthGroupedSampler


class LengthToyDataset(ToyDataset):
    """ToyDataset whose rows differ in length (unpadded), so that length grouping has work to do."""

    def __init__(self, n: int = 24):
        super().__init__(n=n, length=12)
        for i, row in enumerate(self.rows):
            keep = 3 + (i * 5) % 9
            self.rows[i] = {
                "input_ids": row["input_ids"][:keep],
                "attention_mask": row["attention_mask"][:keep].clone().fill_(1),
                "token_type_ids": row["token_type_ids"][:keep],
                "labels": row["labels"],
            }


class RecordingTrainer(SmartTrainer):
    """Notes the input ids of every training batch, in order."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append(tuple(map(tuple, inputs["input_ids"].tolist())))
        return super().training_step(model, inputs, num_items_in_batch)


def collate(rows):
    """Pad a list of LengthToyDataset rows to the longest one (pad id 1) and stack them."""
    width = max(len(r["input_ids"]) for r in rows)
    out = {}
    for key, pad in (("input_ids", 1), ("attention_mask", 0), ("token_type_ids", 0)):
        out[key] = torch.stack(
            [torch.nn.functional.pad(r[key], (0, width - len(r[key])), value=pad) for r in rows]
        )
    out["labels"] = torch.stack([r["labels"] for r in rows])
    return out


def batches_seen(tmp_path, method: str, strategy: str) -> list:
    args = SmartTrainingArguments(
        output_dir=str(tmp_path / f"{method}-{strategy}"),
        num_train_epochs=3,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        seed=7,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        train_sampling_strategy=strategy,
        smart_method=method,
        smart_epsilon=1e-2,
    )

    trainer = RecordingTrainer(
        model=tiny_model("bert", dropout=0.1),
        args=args,
        train_dataset=LengthToyDataset(),
        data_collator=collate,
    )
    trainer.seen = []
    trainer.train()
    return trainer.seen


@pytest.mark.parametrize("strategy", ["group_by_length", "random"])
def test_every_method_sees_the_same_batches_in_every_epoch(tmp_path, strategy):
    orders = {m: batches_seen(tmp_path, m, strategy) for m in ("vanilla", "r3f", "smart")}
    assert len(orders["vanilla"]) == 18  # 24 examples, batch 4, 3 epochs
    epochs = [orders["vanilla"][i * 6 : (i + 1) * 6] for i in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled each epoch
    assert orders["r3f"] == orders["vanilla"]
    assert orders["smart"] == orders["vanilla"]


def test_seeded_sampler_depends_on_seed_and_epoch_only():
    lengths = [3, 9, 4, 12, 5, 7, 8, 2, 10, 6, 11, 1]
    a = SeededLengthGroupedSampler(4, lengths=lengths, seed=3)
    first = list(a)
    torch.rand(100)  # the global RNG moves: the order does not
    assert list(a) == first
    a.set_epoch(1)
    second = list(a)
    assert second != first
    b = SeededLengthGroupedSampler(4, lengths=lengths, seed=3)
    b.set_epoch(1)  # a resumed run starts at epoch 1: it sees epoch 1's order
    assert list(b) == second
    assert sorted(second) == list(range(len(lengths)))
