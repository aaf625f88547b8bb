"""Readers: the real benchmark files, small malformed files, custom data, the hub fallback, subsets."""

import gzip
import json
import logging
import os
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from smart_tune.data import class_balanced_subset, dropped_rows, load_custom, load_split, stratified_sample
from smart_tune.errors import ConfigError, DataError
from smart_tune.tasks import get_task


def _shared_data() -> Path:
    override = os.environ.get("SMART_TUNE_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data"


DATA = _shared_data()
GLUE = DATA / "glue"
needs_data = pytest.mark.skipif(not GLUE.is_dir(), reason=f"benchmark data not found at {DATA}")

ENV_VARS = ("GLUE_DIR", "SNLI_DIR", "ANLI_DIR", "SCITAIL_DIR")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    # A developer's GLUE_DIR must not change what these tests read.
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _columns(task):
    return [*task.text_columns, "label", "idx"]


# --------------------------------------------------------------------------------------------------
# The real files under ../shared/data

GLUE_ROWS = {
    "cola": (8551, 1043, 1063),
    "sst2": (67349, 872, 1821),
    "mrpc": (3668, 408, 1725),
    "stsb": (5749, 1500, 1379),
    "qnli": (None, 5463, 5463),
    "rte": (2490, 277, 3000),
    "wnli": (635, 71, 146),
}
GLUE_CASES = [
    (name, split, rows)
    for name, counts in GLUE_ROWS.items()
    for split, rows in zip(("train", "dev", "test"), counts)
    if rows is not None
]


@needs_data
@pytest.mark.parametrize(("name", "split", "rows"), GLUE_CASES)
def test_glue_files(name, split, rows):
    task = get_task(name)
    ds = load_split(task, split, GLUE)
    assert len(ds) == rows
    assert ds.column_names == _columns(task)
    labels = np.asarray(ds[:]["label"])
    if split == "test":  # withheld: -1 for a class, NaN for a regression target (which may be -1)
        assert np.isnan(labels).all() if task.is_regression else (labels == -1).all()
        # GLUE test files number their rows 0..N-1 in the index column.
        assert list(ds[:]["idx"]) == list(range(rows))
    elif task.is_regression:
        assert ds.features["label"].dtype == "float32" and labels.min() >= 0.0 and labels.max() <= 5.0
    else:
        assert set(labels.tolist()) == set(range(task.num_labels))
    assert len(set(ds[:]["idx"])) == rows
    for column in task.text_columns:
        texts = ds[:][column]
        assert all(isinstance(t, str) and t and "\t" not in t and "\n" not in t for t in texts)


@needs_data
def test_mrpc_bom_header_is_not_an_example():
    dev = load_split("mrpc", "dev", GLUE)
    assert dev[0]["sentence1"].startswith("He said the foodservice pie business")
    # A field that begins with '"' is text, not an opening quote.
    assert dev[0]["sentence2"].startswith('" The foodservice pie business does not fit')
    assert dev[0]["label"] == 1
    train = load_split("mrpc", "train", GLUE)
    assert train[0]["sentence1"].startswith("Amrozi accused his brother")
    assert "Quality" not in train[:]["sentence1"][:5]


@needs_data
def test_cola_first_line_is_an_example():
    train = load_split("cola", "train", GLUE)
    assert train[0] == {
        "sentence": "Our friends won't buy this analysis, let alone the next one we propose.",
        "label": 1,
        "idx": 0,
    }
    dev = load_split("cola", "dev", GLUE)
    assert dev[0]["sentence"] == "The sailors rode the breeze clear of the rocks."
    assert dev[-1]["sentence"].endswith("himself.")  # the last line has no newline
    assert Counter(train[:]["label"]) == {1: 6023, 0: 2528}


@needs_data
def test_leading_double_quotes_are_read_intact():
    dev = load_split("qnli", "dev", GLUE)
    assert dev[2071]["idx"] == 2071
    assert dev[2071]["sentence"].startswith('"Markets, by themselves, even when they are stable')
    assert dev[694]["sentence"].startswith('" Luis Walter Alvarez')
    # SST-2 text keeps its trailing space, as in the file (and on the hub).
    assert load_split("sst2", "train", GLUE)[0]["sentence"] == "hide new secretions from the parental units "


@needs_data
def test_glue_layouts_and_env_var(monkeypatch):
    via_task_dir = load_split("rte", "dev", GLUE / "RTE")
    via_root = load_split("rte", "dev", DATA)  # <dir>/glue/RTE/dev.tsv
    monkeypatch.setenv("GLUE_DIR", str(GLUE))
    via_env = load_split("RTE", "validation")
    assert len(via_task_dir) == len(via_root) == len(via_env) == 277
    assert via_env[0] == via_task_dir[0]
    assert "source=" + str(GLUE / "RTE" / "dev.tsv") in via_env.info.description


@needs_data
@pytest.mark.parametrize(("split", "rows", "dropped"), [("dev", 9842, 158), ("test", 9824, 176)])
def test_snli_drops_rows_without_gold_label(split, rows, dropped, caplog):
    with caplog.at_level(logging.INFO, logger="smart_tune.data"):
        ds = load_split("snli", split, DATA)
    assert len(ds) == rows
    assert dropped_rows(ds) == dropped
    assert f"dropped {dropped} SNLI {split} rows" in caplog.text
    assert ds.column_names == ["premise", "hypothesis", "label", "idx", "annotator_labels"]
    assert set(ds[:]["label"]) == {0, 1, 2}
    if split == "dev":  # published counts: entailment, neutral, contradiction
        assert Counter(ds[:]["label"]) == {0: 3329, 1: 3235, 2: 3278}


@needs_data
def test_snli_dir_env_var(monkeypatch):
    monkeypatch.setenv("SNLI_DIR", str(DATA / "snli"))
    assert len(load_split("snli", "dev")) == 9842


@needs_data
@pytest.mark.parametrize(
    ("name", "split", "rows"),
    [
        ("anli_r1", "dev", 1000),
        ("anli_r1", "test", 1000),
        ("anli_r2", "dev", 1000),
        ("anli_r2", "test", 1000),
        ("anli_r3", "dev", 1200),
        ("anli_r3", "test", 1200),
        ("anli", "dev", 3200),
        ("anli", "test", 3200),
    ],
)
def test_anli_files(name, split, rows):
    ds = load_split(name, split, DATA)
    assert len(ds) == rows
    assert ds.column_names == ["premise", "hypothesis", "label", "idx"]
    assert set(ds[:]["label"]) == {0, 1, 2}
    assert list(ds[:]["idx"]) == list(range(rows))


@needs_data
def test_anli_all_rounds_is_r1_r2_r3_in_order():
    combined = load_split("anli", "dev", DATA / "anli")
    r2 = load_split("anli_r2", "dev", DATA)
    assert combined[1000]["premise"] == r2[0]["premise"]
    assert Counter(load_split("anli_r3", "dev", DATA)[:]["label"]) == {0: 402, 1: 402, 2: 396}


@needs_data
def test_class_balanced_subset_of_real_data():
    train = load_split("sst2", "train", GLUE)
    subset = class_balanced_subset(train, 0.01, seed=13)
    full, small = Counter(train[:]["label"]), Counter(subset[:]["label"])
    assert small == {c: round(0.01 * n) for c, n in full.items()}


def test_stratified_sample_gives_each_class_its_share_by_largest_remainder():
    # 10 rows of class 0, 7 of class 1, 3 of class 2, sorted by label (the first 6 would all be 0s).
    labels = [0] * 10 + [1] * 7 + [2] * 3
    ds = datasets.Dataset.from_dict({"label": labels, "idx": list(range(20))})
    sample = stratified_sample(ds, 6, seed=5)
    # Shares 6 * (10, 7, 3) / 20 = (3.0, 2.1, 0.9): floors (3, 2, 0), the one row left goes to the
    # largest remainder (class 2's 0.9).
    assert Counter(sample[:]["label"]) == {0: 3, 1: 2, 2: 1}
    rng = np.random.default_rng(5)
    expected = sorted([*rng.permutation(np.arange(0, 10))[:3], *rng.permutation(np.arange(10, 17))[:2]])
    expected = sorted([*expected, *rng.permutation(np.arange(17, 20))[:1]])
    assert sample[:]["idx"] == expected  # the rows a direct draw picks, in the file's order
    assert stratified_sample(ds, 6, seed=5)[:]["idx"] == expected  # the same seed, the same rows
    assert stratified_sample(ds, 20, seed=5)[:]["idx"] == list(range(20))  # n = N keeps every row


def test_stratified_sample_of_a_regression_split_is_one_group():
    ds = datasets.Dataset.from_dict({"label": [float(i) / 4 for i in range(12)], "idx": list(range(12))})
    assert stratified_sample(ds, 5, seed=1)[:]["idx"] == sorted(np.random.default_rng(1).permutation(12)[:5])


@needs_data
def test_train_with_a_sample_seed_draws_the_same_rows_whatever_the_run_seed(tmp_path):
    from smart_tune.options import RunOptions
    from smart_tune.run import resolve_task_and_data

    run = RunOptions(task="stsb", data_dir=str(GLUE), max_train_samples=200, sample_seed=0)
    _, one, _ = resolve_task_and_data(run, seed=1)
    _, two, _ = resolve_task_and_data(run, seed=2)
    assert one["train"][:]["idx"] == two["train"][:]["idx"] and len(one["train"]) == 200
    # STS-B's training file is sorted by genre: its first 200 pairs are all captions; a draw is not.
    first = resolve_task_and_data(RunOptions(task="stsb", data_dir=str(GLUE), max_train_samples=200), seed=1)[
        1
    ]["train"]
    assert first[:]["idx"] == list(range(200)) and one["train"][:]["idx"] != list(range(200))


# --------------------------------------------------------------------------------------------------
# Errors, on small files

RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_split("rte", "dev", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_data_dir_that_is_a_file(tmp_path):
    path = _write(tmp_path / "dev.tsv", RTE_HEADER)
    with pytest.raises(DataError, match="is not a directory"):
        load_split("rte", "dev", path)


def test_missing_file_names_the_paths_looked_for(tmp_path):
    with pytest.raises(DataError) as info:
        load_split("rte", "dev", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "RTE" / "dev.tsv") in message
    assert str(tmp_path / "dev.tsv") in message
    assert "\n" not in message


def test_missing_anli_and_snli_files(tmp_path):
    with pytest.raises(DataError, match=r"R2[/\\]train\.jsonl"):
        load_split("anli_r2", "train", tmp_path)
    with pytest.raises(DataError, match=r"snli_1\.0_train\.jsonl"):
        load_split("snli", "train", tmp_path)


def test_wrong_field_count(tmp_path):
    _write(tmp_path / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tentailment\n")
    with pytest.raises(DataError) as info:
        load_split("rte", "dev", tmp_path)
    assert (
        str(info.value) == f"{tmp_path / 'RTE' / 'dev.tsv'}, line 3: expected 4 tab-separated fields, found 3"
    )


def test_cola_wrong_field_count(tmp_path):
    _write(tmp_path / "dev.tsv", "gj04\t1\t\tGood.\ngj04\t0\tBad.\n")
    with pytest.raises(DataError, match=r"dev\.tsv, line 2: expected 4"):
        load_split("cola", "dev", tmp_path)


def test_unknown_label(tmp_path):
    _write(tmp_path / "RTE" / "train.tsv", RTE_HEADER + "0\ta\tb\tmaybe\n")
    with pytest.raises(DataError) as info:
        load_split("rte", "train", tmp_path)
    message = str(info.value)
    assert "'maybe'" in message and "train.tsv, line 2" in message
    assert "entailment, not_entailment" in message


def test_regression_label_not_a_number(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    row = "0\tg\tf\ty\t0\tnone\tnone\ta\tb\t{}\n"
    _write(tmp_path / "STS-B" / "dev.tsv", header + row.format("4.5") + row.format("high"))
    with pytest.raises(DataError) as info:
        load_split("stsb", "dev", tmp_path)
    assert str(info.value) == f"{tmp_path / 'STS-B' / 'dev.tsv'}, line 3: label 'high' is not a number"


@pytest.mark.parametrize("content", [RTE_HEADER, ""])
def test_empty_split(tmp_path, content):
    path = _write(tmp_path / "RTE" / "dev.tsv", content)
    with pytest.raises(DataError, match="no examples") as info:
        load_split("rte", "dev", tmp_path)
    assert str(path) in str(info.value)


def test_missing_column(tmp_path):
    _write(tmp_path / "RTE" / "dev.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n")
    with pytest.raises(DataError, match=r"no column 'label' \(columns: index, sentence1, sentence2\)"):
        load_split("rte", "dev", tmp_path)


def test_invalid_json_line(tmp_path):
    good = json.dumps({"sentence1": "a", "sentence2": "b", "gold_label": "neutral"})
    _write(tmp_path / "snli_1.0_dev.jsonl", good + "\n{not json\n")
    with pytest.raises(DataError) as info:
        load_split("snli", "dev", tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'snli_1.0_dev.jsonl'}, line 2: invalid JSON")


def test_anli_unknown_label_and_missing_key(tmp_path):
    rows = [{"uid": "u", "context": "p", "hypothesis": "h", "label": "e"}]
    _write(
        tmp_path / "anli_v1.0" / "R1" / "dev.jsonl",
        "\n".join(json.dumps(r) for r in rows + [{**rows[0], "label": "x"}]),
    )
    with pytest.raises(DataError, match=r"R1[/\\]dev\.jsonl, line 2: unknown label 'x'"):
        load_split("anli_r1", "dev", tmp_path)
    _write(tmp_path / "anli_v1.0" / "R1" / "dev.jsonl", json.dumps({"context": "p", "label": "n"}))
    with pytest.raises(DataError, match=r"line 1: missing key 'hypothesis'"):
        load_split("anli_r1", "dev", tmp_path)


def test_unknown_split_and_custom_task():
    with pytest.raises(ConfigError, match="task mnli has no split 'dev'"):
        load_split("mnli", "dev", "/nonexistent")
    with pytest.raises(ConfigError, match="no split 'dev_matched'"):
        load_split("rte", "dev_matched", "/nonexistent")


# --------------------------------------------------------------------------------------------------
# Layouts of tasks not in ../shared/data, on small files


def test_mnli_qqp_and_scitail_layouts(tmp_path):
    mnli_header = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
    _write(
        tmp_path / "MNLI" / "dev_mismatched.tsv", mnli_header + '7\t1\t1e\tfiction\t"P\tH\tneutral\tneutral\n'
    )
    ds = load_split("mnli", "dev_mismatched", tmp_path)
    assert ds[0] == {"premise": '"P', "hypothesis": "H", "label": 1, "idx": 7}

    qqp_header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    _write(tmp_path / "glue" / "qqp" / "dev.tsv", qqp_header + "42\t1\t2\tq1?\tq2?\t1\n")
    assert load_split("QQP", "dev", tmp_path)[0] == {
        "question1": "q1?",
        "question2": "q2?",
        "label": 1,
        "idx": 42,
    }
    _write(tmp_path / "glue" / "qqp" / "test.tsv", "id\tquestion1\tquestion2\n5\ta\tb\n")
    assert load_split("qqp", "test", tmp_path)[0]["label"] == -1

    scitail = tmp_path / "SciTailV1.1" / "tsv_format" / "scitail_1.0_dev.tsv"
    _write(scitail, "A premise.\tA hypothesis.\tentails\nP2\tH2\tneutral\n")
    ds = load_split("scitail", "dev", tmp_path)
    assert ds[:]["label"] == [0, 1] and ds[:]["idx"] == [0, 1]
    assert ds[0]["premise"] == "A premise."
    _write(scitail, "P\tH\tcontradiction\n")
    with pytest.raises(DataError, match="unknown label 'contradiction'"):
        load_split("scitail", "dev", tmp_path)


def test_snli_plain_and_gzip_files(tmp_path):
    lines = [
        {"sentence1": "p1", "sentence2": "h1", "gold_label": "contradiction"},
        {"sentence1": "p2", "sentence2": "h2", "gold_label": "-"},
        {"sentence1": "p3", "sentence2": "h3", "gold_label": "entailment"},
    ]
    with gzip.open(tmp_path / "snli_1.0_test.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(line) for line in lines) + "\n")
    ds = load_split("snli", "test", tmp_path)
    assert ds[:]["label"] == [2, 0] and ds[:]["idx"] == [0, 1] and dropped_rows(ds) == 1
    _write(tmp_path / "snli" / "snli_1.0_dev.jsonl", json.dumps(lines[1]) + "\n")
    with pytest.raises(DataError, match="no examples"):
        load_split("snli", "dev", tmp_path)


# --------------------------------------------------------------------------------------------------
# The Hugging Face hub


def test_hub_failure_is_a_one_line_data_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub\n(LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as info:
        load_split("rte", "dev")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "cannot load rte dev from the Hugging Face hub (nyu-mll/glue (rte) split validation)"
    )
    assert "ConnectionError" in message
    assert message.endswith("pass --data-dir or set GLUE_DIR")
    with pytest.raises(DataError, match="set ANLI_DIR$"):
        load_split("anli_r1", "train")


def test_hub_datasets_are_normalised(monkeypatch):
    rte_features = datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
            "idx": datasets.Value("int32"),
        }
    )
    hub = {
        ("nyu-mll/glue", "rte", "test"): datasets.Dataset.from_dict(
            {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [-1, -1], "idx": [0, 1]},
            features=rte_features,
        ),
        ("nyu-mll/glue", "rte", "validation"): datasets.Dataset.from_dict(
            {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [1, 0], "idx": [3, 4]},
            features=rte_features,
        ),
        ("stanfordnlp/snli", None, "validation"): datasets.Dataset.from_dict(
            {"premise": ["p", "q", "r"], "hypothesis": ["h", "i", "j"], "label": [2, -1, 0]}
        ),
        ("allenai/scitail", "tsv_format", "test"): datasets.Dataset.from_dict(
            {"premise": ["p", "q"], "hypothesis": ["h", "i"], "label": ["neutral", "entails"]}
        ),
    }
    for r in "123":
        hub[("facebook/anli", None, f"dev_r{r}")] = datasets.Dataset.from_dict(
            {"uid": [r], "premise": [f"p{r}"], "hypothesis": ["h"], "label": [int(r) - 1], "reason": [""]}
        )
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return hub[(path, name, split)]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dev = load_split("rte", "dev")
    assert dev.column_names == ["sentence1", "sentence2", "label", "idx"]
    assert dev[:]["label"] == [1, 0] and dev[:]["idx"] == [3, 4]
    assert load_split("rte", "test")[:]["label"] == [-1, -1]
    snli = load_split("snli", "dev")
    assert snli[:]["label"] == [2, 0] and snli[:]["premise"] == ["p", "r"] and dropped_rows(snli) == 1
    assert load_split("scitail", "test")[:]["label"] == [1, 0]
    anli = load_split("anli", "dev")
    assert (
        anli[:]["premise"] == ["p1", "p2", "p3"]
        and anli[:]["idx"] == [0, 1, 2]
        and anli[:]["label"] == [0, 1, 2]
    )
    assert ("facebook/anli", None, "dev_r3") in calls


# --------------------------------------------------------------------------------------------------
# Custom data


def test_custom_csv_one_text_column(tmp_path):
    train = _write(tmp_path / "train.csv", 'text,label\n"good, really",pos\nbad,neg\nfine,pos\n')
    dev = _write(tmp_path / "dev.csv", "text,label\nok,pos\n")
    task, splits = load_custom(train, dev, text_columns=("text",))
    assert task.name == "custom" and task.label_list == ("neg", "pos")
    assert task.metrics == ("accuracy", "f1") and task.main_metric == "accuracy"
    assert task.eval_splits == ("dev",) and task.test_splits == ()
    assert set(splits) == {"train", "dev"}
    assert splits["train"].column_names == ["text", "label", "idx"]
    assert splits["train"][0] == {"text": "good, really", "label": 1, "idx": 0}
    assert splits["dev"][:]["label"] == [1]
    # Evaluation only: the label list comes from the validation file.
    task, splits = load_custom(validation_file=train, text_columns="text")
    assert task.label_list == ("neg", "pos") and set(splits) == {"dev"} and task.eval_splits == ("dev",)


def test_custom_tsv_two_text_columns_and_unlabeled_test(tmp_path):
    train = _write(tmp_path / "train.tsv", 'a\tb\ty\n"quoted\tx\tcat\nc\td\tdog\ne\tf\tbird\n')
    test = _write(tmp_path / "test.tsv", "a\tb\nq\tr\n")
    task, splits = load_custom(train, test_file=test, text_columns=["a", "b"], label_column="y")
    assert task.text_columns == ("a", "b") and task.label_list == ("bird", "cat", "dog")
    assert task.metrics == ("accuracy", "macro_f1")
    assert splits["train"][0] == {"a": '"quoted', "b": "x", "label": 1, "idx": 0}
    assert splits["test"][0] == {"a": "q", "b": "r", "label": -1, "idx": 0}


def test_custom_jsonl_regression(tmp_path):
    rows = [{"s1": "a", "s2": "b", "score": 1.5}, {"s1": "c", "s2": "d", "score": "4"}]
    train = _write(tmp_path / "train.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    task, splits = load_custom(train, text_columns=("s1", "s2"), label_column="score", regression=True)
    assert task.is_regression and task.num_labels == 1 and task.metrics == ("pearson", "spearman")
    assert splits["train"][:]["label"] == [1.5, 4.0]
    bad = _write(tmp_path / "bad.jsonl", json.dumps({**rows[0], "score": "n/a"}))
    with pytest.raises(DataError, match=r"bad\.jsonl, line 1: label 'n/a' is not a number"):
        load_custom(bad, text_columns=("s1", "s2"), label_column="score", regression=True)


def test_custom_json_array_and_integer_label_order(tmp_path):
    items = [{"sentence": str(i), "label": label} for i, label in enumerate([10, 2, 0, 2])]
    train = _write(tmp_path / "train.json", json.dumps(items))
    task, splits = load_custom(train)
    assert task.label_list == ("0", "2", "10")
    assert splits["train"][:]["label"] == [2, 1, 0, 1]


def test_custom_errors(tmp_path):
    train = _write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    dev = _write(tmp_path / "dev.csv", "text,label\nc,x\nd,z\n")
    with pytest.raises(
        DataError, match=r"dev\.csv, line 3: label 'z' is not one of the training labels \(x, y\)"
    ):
        load_custom(train, dev, text_columns="text")
    with pytest.raises(DataError) as info:
        load_custom(train, text_columns=("sentence",))
    assert str(info.value) == f"{train}: no column 'sentence' (columns: text, label)"
    short = _write(tmp_path / "short.csv", "text,label\na,x\nb\n")
    with pytest.raises(DataError, match=r"short\.csv, line 3: expected 2 comma-separated fields, found 1"):
        load_custom(short, text_columns="text")
    with pytest.raises(DataError, match="file not found"):
        load_custom(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="unsupported file type '.txt'"):
        load_custom(_write(tmp_path / "train.txt", "x"))
    with pytest.raises(ConfigError, match="no data files"):
        load_custom()
    with pytest.raises(ConfigError, match="one or two text columns"):
        load_custom(train, text_columns=("a", "b", "c"))
    one_label = _write(tmp_path / "one.csv", "text,label\na,x\n")
    with pytest.raises(DataError, match="at least two labels"):
        load_custom(one_label, text_columns="text")
    with pytest.raises(ConfigError, match="needs a train or validation file"):
        load_custom(test_file=train, text_columns="text")


def test_custom_csv_with_a_repeated_column_name(tmp_path):
    # csv.reader keeps both; a row dict would keep the last one without a word.
    dup = _write(tmp_path / "dup.csv", "text,text,label\na,b,x\nc,d,y\n")
    with pytest.raises(DataError) as info:
        load_custom(dup, text_columns="text")
    assert str(info.value) == (
        f"{dup}, line 1: column name(s) 'text' appear more than once in the header; rename them"
    )
    tsv = _write(tmp_path / "dup.tsv", "text\tlabel\tlabel \na\tx\ty\n")  # the same once stripped
    with pytest.raises(DataError, match=r"dup\.tsv, line 1: column name\(s\) 'label' appear more than once"):
        load_custom(tsv, text_columns="text")


def test_custom_file_that_is_a_directory(tmp_path):
    with pytest.raises(DataError) as info:
        load_custom(tmp_path, text_columns="text")
    assert str(info.value) == f"{tmp_path} is a directory; give a data file (.csv, .tsv, .jsonl or .json)"


@pytest.mark.parametrize(
    "name, text, spellings",
    [
        # A JSON float beside an int (pandas writes 1.0 for an int column with a gap in it).
        (
            "mixed.jsonl",
            '{"t": "a", "label": 1}\n{"t": "b", "label": 0}\n{"t": "c", "label": 1.0}\n',
            "'1', '1.0'",
        ),
        ("mixed.csv", "t,label\na,1\nb,01\nc,0\n", "'01', '1'"),
    ],
    ids=["jsonl-int-and-float", "csv-1-and-01"],
)
def test_custom_labels_that_spell_one_number_two_ways(tmp_path, name, text, spellings):
    # Each spelling would become a class of its own: three classes for two, trained without a word.
    path = _write(tmp_path / name, text)
    with pytest.raises(DataError) as info:
        load_custom(path, text_columns="t")
    assert str(info.value) == (
        f"{path}, line 3: column 'label' writes one number two ways ({spellings}); write each label one way"
    )


def test_custom_empty_label_is_a_missing_value(tmp_path):
    # Not "label '' is not one of the training labels": the training file's own row lacks one.
    train = _write(tmp_path / "train.csv", "t,label\na,x\nb,\nc,y\n")
    with pytest.raises(DataError) as info:
        load_custom(train, text_columns="t")
    assert str(info.value) == f"{train}, line 3: missing value for column 'label'"
    ok = _write(tmp_path / "ok.csv", "t,label\na,x\nc,y\n")
    dev = _write(tmp_path / "dev.jsonl", '{"t": "a", "label": "x"}\n{"t": "b", "label": " "}\n')
    with pytest.raises(DataError) as info:
        load_custom(ok, dev, text_columns="t")
    assert str(info.value) == f"{dev}, line 2: missing value for column 'label'"


@pytest.mark.parametrize("key, value", [("t", ["a", "b"]), ("t", {"k": 1}), ("label", ["x"])])
def test_custom_json_value_that_is_not_text(tmp_path, key, value):
    # str() would train on "['a', 'b']" or make a class named "['x']".
    rows = [{"t": "a", "label": "x"}, {"t": "b", "label": "y", key: value}]
    path = _write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as info:
        load_custom(path, text_columns="t")
    kind = "a list" if isinstance(value, list) else "an object"
    assert str(info.value) == f"{path}, line 2: column '{key}' holds {kind}, not a text, number or boolean"


def test_custom_csv_errors_name_the_line_a_record_starts_on(tmp_path):
    # A quoted field may hold newlines: the record that starts on line 2 ends on line 4.
    train = _write(tmp_path / "train.csv", 't,label\n"one\ntwo\nthree",zz,extra\nb,y\n')
    with pytest.raises(DataError) as info:
        load_custom(train, text_columns="t")
    assert str(info.value) == f"{train}, lines 2-4: expected 2 comma-separated fields, found 3"
    ok = _write(tmp_path / "ok.csv", 't,label\n"one\ntwo",x\nb,y\n')
    dev = _write(tmp_path / "dev.csv", 't,label\n"multi\nline",x\nb,zz\n')
    with pytest.raises(DataError, match=r"dev\.csv, line 4: label 'zz' is not one of the training labels"):
        load_custom(ok, dev, text_columns="t")


def test_custom_file_with_a_long_field(tmp_path):
    # Longer than the csv module's default field limit (131072 characters): a long document is text.
    long = "word " * 40000
    for name, sep in (("long.csv", ","), ("long.tsv", "\t")):
        path = _write(tmp_path / name, f"t{sep}label\n{long}{sep}x\nb{sep}y\n")
        task, splits = load_custom(path, text_columns="t")
        assert splits["train"][0]["t"] == long and task.label_list == ("x", "y")


# --------------------------------------------------------------------------------------------------
# class_balanced_subset


def _toy(labels):
    return datasets.Dataset.from_dict({"sentence": [str(i) for i in range(len(labels))], "label": labels})


def test_class_balanced_subset_counts_determinism_and_nesting():
    ds = _toy([0] * 600 + [1] * 300 + [2] * 100)
    small = class_balanced_subset(ds, 0.1, seed=1)
    assert Counter(small[:]["label"]) == {0: 60, 1: 30, 2: 10}
    assert small[:]["sentence"] == class_balanced_subset(ds, 0.1, seed=1)[:]["sentence"]
    assert small[:]["sentence"] != class_balanced_subset(ds, 0.1, seed=2)[:]["sentence"]
    larger = class_balanced_subset(ds, 0.3, seed=1)
    assert set(small[:]["sentence"]) < set(larger[:]["sentence"])
    order = [int(s) for s in larger[:]["sentence"]]
    assert order == sorted(order)
    assert Counter(class_balanced_subset(ds, 0.001, seed=0)[:]["label"]) == {0: 1, 1: 1, 2: 1}
    assert len(class_balanced_subset(ds, 1.0, seed=0)) == len(ds)


def test_class_balanced_subset_regression_and_bad_fraction():
    ds = _toy([float(i) / 10 for i in range(50)])
    assert len(class_balanced_subset(ds, 0.2, seed=0)) == 10
    for fraction in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="fraction"):
            class_balanced_subset(ds, fraction, seed=0)


def test_custom_json_booleans_keep_their_json_spelling(tmp_path):
    # str(True) is "True": a CSV dev file of the same labels ("true") would be refused as unknown.
    rows = [{"t": "a", "label": True}, {"t": "b", "label": False}]
    train = _write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    dev = _write(tmp_path / "dev.csv", "t,label\nc,true\nd,false\n")
    task, splits = load_custom(train, dev, text_columns="t")
    assert task.label_list == ("false", "true")
    assert list(splits["dev"]["label"]) == [1, 0]


def test_custom_labels_from_a_model_read_a_file_alone_in_the_model_order(tmp_path):
    # evaluate/predict --file: the model's labels (its id2label order), not the file's, number the classes.
    dev = _write(tmp_path / "dev.csv", "t,label\nc,yes\nd,yes\n")
    task, splits = load_custom(validation_file=dev, text_columns="t", label_list=["yes", "no"])
    assert task.label_list == ("yes", "no") and list(splits["dev"]["label"]) == [0, 0]
    test = _write(tmp_path / "test.csv", "t,label\nc,\nd,maybe\n")
    with pytest.raises(DataError, match=r"test\.csv, line 3: label 'maybe' is not one of"):
        load_custom(test_file=test, text_columns="t", label_list=["yes", "no"])


def test_a_missing_regression_target_is_nan_not_a_value(tmp_path):
    # -1 is a real target on many scales; a test row without one is NaN.
    test = _write(tmp_path / "test.csv", "t,score\nc,-1\nd,\n")
    _, splits = load_custom(test_file=test, text_columns="t", label_column="score", regression=True)
    labels = np.asarray(splits["test"]["label"])
    assert labels[0] == -1 and np.isnan(labels[1])


def test_first_examples_of_one_label_are_warned_about(capsys):
    from smart_tune.run import warn_if_one_label

    task = get_task("cola")
    ds = datasets.Dataset.from_dict({"label": [1, 1, 1]})
    warn_if_one_label(ds, task, 3)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "all have the label 'acceptable'" in err and "--train-fraction" in err, err
    warn_if_one_label(datasets.Dataset.from_dict({"label": [1, 0]}), task, 2)
    assert capsys.readouterr().err == ""


def _pairs():
    return datasets.Dataset.from_dict(
        {
            "sentence1": ["a cat sat", "two dogs ran"],
            "sentence2": ["a cat", "dogs"],
            "label": [0, 1],
            "idx": [0, 1],
        }
    )


def saved_pairs(folder: Path) -> str:
    """The pairs saved and read back: a split with cache files, as one from the hub has."""
    _pairs().save_to_disk(str(folder / "saved"))
    return str(folder / "saved")


def test_tokenizing_an_in_memory_split_never_hashes_the_tokenizer(tiny_model_dir, tmp_path, monkeypatch):
    """Naming the map's result by a hash of the function pickled the whole tokenizer (about a second a
    split); a split read by our readers is in memory and never cached, so it gets a fresh name instead."""
    from transformers import AutoTokenizer

    from smart_tune.models import tokenize

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = _pairs().map(
        lambda b: {**tokenizer(b["sentence1"], b["sentence2"]), "labels": b["label"]}, batched=True
    )

    hashed = []  # the tokenize function (whose closure holds the tokenizer), each time datasets hashes it
    original = datasets.fingerprint.Hasher.update

    def spy(self, value):
        if getattr(value, "__qualname__", "").startswith("tokenize."):
            hashed.append(value)
        return original(self, value)

    pairs = _pairs()
    monkeypatch.setattr(datasets.fingerprint.Hasher, "update", spy)
    encoded = tokenize(pairs, get_task("rte"), tokenizer, 32)
    assert encoded.column_names == ["idx", "input_ids", "token_type_ids", "attention_mask", "labels"]
    for column in ("input_ids", "attention_mask", "labels"):
        assert encoded[column] == expected[column]
    assert not hashed
    tokenize(datasets.load_from_disk(saved_pairs(tmp_path)), get_task("rte"), tokenizer, 32)
    assert hashed  # the spy sees it where datasets does hash it


def test_tokenizing_a_cached_split_is_named_by_its_contents_so_the_cache_is_found(tiny_model_dir, tmp_path):
    """A split with cache files (from the hub) keeps datasets' own naming: the same map finds its result."""
    from transformers import AutoTokenizer

    from smart_tune.models import tokenize

    cached = datasets.load_from_disk(saved_pairs(tmp_path))
    assert cached.cache_files
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    first, second = (tokenize(cached, get_task("rte"), tokenizer, 32) for _ in range(2))
    assert first._fingerprint == second._fingerprint
    assert tokenize(cached, get_task("rte"), tokenizer, 16)._fingerprint != first._fingerprint
