"""The AI's quality on public sets (issue 14 point 7), measured by the commands other tools call
(`aisupport eval triage|handoff|answers`), offline, through the product's own paths. The floors are set
from measured results (decision 0058): raised when results improve, never lowered.

The held-out halves are elsewhere, so each set's development part is split here with a fixed seed: triage
learns from three quarters of BANKING77's training rows and is measured on the rest; the hand-off's
threshold is tuned on half of CLINC150's validation rows and measured on the other half; answers learn
from half of each StackFAQ article's rephrasings and are measured on the other half."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from aisupport.core.config import PROJECT_ROOT
from tests.conftest import service_env
from tests.knowledge.test_retrieval_eval import split_history

pytestmark = pytest.mark.system  # each evaluation is a command of its own

DATA = PROJECT_ROOT / "tests" / "data"
# Encoding dominates: about 10,000 messages (triage) and 17,000 (hand-off) at some 65 a second, on the
# 2-core machine, when nothing else runs.
EVAL_SECONDS = 1200
# Measured with these splits (decision 0058): triage accuracy 0.9312, macro-F1 0.9307, ECE 0.0226;
# hand-off F1 0.7523 at in-scope accuracy 0.9607; answers 0.848 answered, 0.9528 of them relevant.
TRIAGE_FLOORS = {"accuracy": 0.925, "macro_f1": 0.925}
TRIAGE_ECE_CEILING = 0.035
HANDOFF_FLOORS = {"oos_f1": 0.74, "in_scope_accuracy": 0.95}
ANSWERS_FLOORS = {"answer_rate": 0.83, "answered_relevant_rate": 0.945, "citation_validity": 1.0}


def _eval(database_url: str, tmp_path: Path, kind: str, **files: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "aisupport.cli", "eval", kind]
    for name, path in files.items():
        command += [f"--{name}", str(path)]
    run = subprocess.run(
        command,
        env=service_env(DATABASE_URL=database_url, EVAL_RESULTS_PATH=str(tmp_path / "results.jsonl")),
        capture_output=True,
        text=True,
        timeout=EVAL_SECONDS,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    (recorded,) = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert (recorded["kind"], recorded["figures"]) == (kind, found)  # kept to compare runs
    return found


def _split(rows: list[str], share: float, folder: Path, names: tuple[str, str]) -> tuple[Path, Path]:
    """`rows` (JSON lines) split per label with a fixed seed: `share` of each label's rows, then the rest."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for line in rows:
        by_label[json.loads(line)["label"]].append(line)
    first, second = [], []
    shuffle = random.Random(14)
    for label in sorted(by_label):
        lines = by_label[label]
        shuffle.shuffle(lines)
        cut = round(len(lines) * share)
        first += lines[:cut]
        second += lines[cut:]
    paths = (folder / names[0], folder / names[1])
    for path, lines in zip(paths, (first, second), strict=True):
        path.write_text("".join(line + "\n" for line in lines))
    return paths


@pytest.mark.timeout(EVAL_SECONDS + 60)
def test_triage_on_banking77_stays_above_its_floors(database_url: str, tmp_path: Path) -> None:
    rows = (DATA / "banking77" / "train.jsonl").read_text().splitlines()
    train, test = _split(rows, 0.75, tmp_path, ("train.jsonl", "test.jsonl"))
    found = _eval(database_url, tmp_path, "triage", train=train, test=test)
    assert found["messages"] == len(test.read_text().splitlines())
    for name, floor in TRIAGE_FLOORS.items():
        assert found[name] >= floor, (name, found)
    assert found["ece"] <= TRIAGE_ECE_CEILING, found
    assert found["applied_accuracy"] >= found["accuracy"]  # what clears the threshold is surer


@pytest.mark.timeout(EVAL_SECONDS + 60)
def test_hand_offs_on_clinc150_stay_above_their_floors(database_url: str, tmp_path: Path) -> None:
    rows = (DATA / "clinc150" / "val.jsonl").read_text().splitlines()
    val, test = _split(rows, 0.5, tmp_path, ("val.jsonl", "test.jsonl"))
    found = _eval(
        database_url, tmp_path, "handoff", train=DATA / "clinc150" / "train.jsonl", val=val, test=test
    )
    for name, floor in HANDOFF_FLOORS.items():
        assert found[name] >= floor, (name, found)


@pytest.mark.timeout(EVAL_SECONDS + 60)
def test_answers_on_stackfaq_stay_above_their_floors(database_url: str, tmp_path: Path) -> None:
    history, held = split_history(DATA / "stackfaq" / "queries_dev.jsonl", tmp_path)
    found = _eval(
        database_url,
        tmp_path,
        "answers",
        articles=DATA / "stackfaq" / "articles.jsonl",
        queries=held,
        history=history,
    )
    assert found["queries"] == len(held.read_text().splitlines())
    for name, floor in ANSWERS_FLOORS.items():
        assert found[name] >= floor, (name, found)
    assert set(found["handoffs"]) <= {"low_confidence", "no_knowledge"}
