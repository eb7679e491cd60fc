"""PHEE (shared/data/phee, read in place) through a label map: entity counts check against its .ann files."""

import json
from collections import Counter
from pathlib import Path

import pytest

from clinical_ner_crf.sampling import all_o_share, downsample_plain
from conftest import command

p = command("prepare_n2c2")  # the command, called in-process as from its command line

REPO_ROOT = Path(__file__).resolve().parent.parent
LABEL_MAP = REPO_ROOT / "configs" / "label_maps" / "phee_to_n2c2.json"
SPLIT_DIRS = {"train": "train", "validation": "dev", "test": "test"}


@pytest.fixture(scope="module")
def phee_dir(shared_data_dir):
    folder = shared_data_dir / "phee" / "brat"
    if not all((folder / name).is_dir() for name in SPLIT_DIRS.values()):
        pytest.skip("shared PHEE data not present")
    return folder


def count_ann_entities(folder: Path, label_map: dict) -> Counter:
    """Mapped T lines per target type, counted straight from the .ann files."""
    counts = Counter()
    for ann in folder.glob("*.ann"):
        for line in ann.read_text(encoding="utf-8").splitlines():
            if line.startswith("T"):
                source_type = line.split("\t")[1].split(" ")[0]
                if label_map.get(source_type):
                    counts[label_map[source_type]] += 1
    return counts


@pytest.fixture(scope="module")
def phee_build(phee_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("phee") / "data"
    stats = p.main([
        "--train_dir", str(phee_dir / "train"), "--validation_dir", str(phee_dir / "dev"),
        "--test_dir", str(phee_dir / "test"), "--label_map", str(LABEL_MAP), "--output_dir", str(output_dir),
    ])
    return output_dir, stats


def test_b_tags_equal_ann_entities_minus_dropped(phee_dir, phee_build):
    from datasets import load_from_disk

    output_dir, stats = phee_build
    label_map = json.loads(LABEL_MAP.read_text())
    expected = {split: count_ann_entities(phee_dir / folder, label_map) for split, folder in SPLIT_DIRS.items()}
    assert {s: dict(c) for s, c in expected.items()} == {
        s: stats["source_entities"][s] for s in SPLIT_DIRS}

    dataset = load_from_disk(str(output_dir))
    names = dataset["train"].features["ner_tags"].feature.names
    b_tags = Counter()
    for split in SPLIT_DIRS:
        for tags in dataset[split]["ner_tags"]:
            b_tags.update(names[tag][2:] for tag in tags if names[tag].startswith("B-"))
    corpus = sum(expected.values(), Counter())
    for entity_type in corpus:
        assert b_tags[entity_type] == corpus[entity_type] - stats["dropped"].get(entity_type, 0), entity_type
    # Nested/overlapping mapped spans exist in PHEE and are counted, never silent.
    assert sum(stats["dropped"].values()) > 0
    assert stats["unmapped_types"]["train"]["Treatment"] > 0
    assert len(dataset["validation"]) == stats["splits"]["validation"]["sentences"]
    assert stats["splits"]["validation"]["documents"] == len(list((phee_dir / "dev").glob("*.txt")))


def test_downsampled_shares(phee_build):
    output_dir, stats = phee_build
    for split in ("train", "validation"):
        info = stats["downsampling"][split]
        if info["all_o_share_before"] >= stats["plain_ratio"]:
            assert abs(info["all_o_share_after"] - stats["plain_ratio"]) <= 0.02
        else:
            # PHEE has almost no all-O sentences: nothing to remove, nothing removed.
            assert info["all_o_removed"] == 0 and info["all_o_share_after"] == info["all_o_share_before"]
            assert info["target_reached"] is False
    # A reachable target on the same data: the share lands on it.
    from datasets import load_from_disk

    train = load_from_disk(str(output_dir))["train"]
    assert all_o_share(downsample_plain(train, 0.0, seed=42)) == 0.0
