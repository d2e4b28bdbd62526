"""dvc.yaml stays honest: code deps are exactly what each stage imports; params keys exist."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from stage_deps import stage_deps  # noqa: E402


def expanded_stages():
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in doc["stages"].items():
        if "foreach" not in stage:
            yield name, stage
            continue
        for key, item in stage["foreach"].items():
            text = yaml.safe_dump(stage["do"]).replace("${key}", str(key))
            for k, v in (item or {}).items():
                text = text.replace("${item.%s}" % k, str(v))
            yield f"{name}@{key}", yaml.safe_load(text)


def test_code_deps_match_imports():
    problems = []
    for name, stage in expanded_stages():
        match = re.search(r"python -m (stages\.\w+)", stage["cmd"])
        assert match, f"{name}: cmd should run a stages module"
        wanted = set(stage_deps(match.group(1)))
        listed = {d for d in stage.get("deps", []) if d.endswith(".py")}
        if wanted != listed:
            problems.append(f"{name}: missing {sorted(wanted - listed)}, extra {sorted(listed - wanted)}")
    assert not problems, "\n".join(problems)


def test_stages_reading_corpus_audio_depend_on_the_corpus():
    """The manifest holds paths, which stay the same when the built-in corpus's audio changes
    (another seed): a stage reading that audio must depend on data/corpus itself, or DVC
    calls its outputs up to date. Every stage depending on data/manifest.csv reads its audio."""
    readers = {name: stage["deps"] for name, stage in expanded_stages() if "data/manifest.csv" in stage.get("deps", [])}
    assert set(readers) == {"mix", "snr_train", "pretrain"}
    assert [name for name, deps in readers.items() if "data/corpus" not in deps] == []


def test_params_keys_exist():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in expanded_stages():
        for key in stage.get("params", []):
            node = params
            for part in str(key).split("."):
                assert isinstance(node, dict) and part in node, f"{name}: params key {key} not in params.yaml"
                node = node[part]


def test_execution_settings_invalidate_nothing():
    """`parallel` changes how fast, never what: listing it would re-extract features
    when a user moves to a bigger machine (the byte-identity it relies on is tested in
    test_synthetic, test_mixing and test_extraction)."""
    for name, stage in expanded_stages():
        keys = [str(k) for k in stage.get("params", [])]
        assert not [k for k in keys if k == "parallel" or k.startswith("parallel.")], name


def test_stages_reading_no_params_list_none():
    """A params entry of a stage whose code reads no params re-runs it for nothing when they change."""
    readers = ("params_section(", "corpus_params(", "PARAMS_FILE")
    for name, stage in expanded_stages():
        module = re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
        code = [ROOT / dep for dep in stage_deps(module) if dep.startswith("stages/") and dep != "stages/common.py"]
        if not any(reader in path.read_text() for path in code for reader in readers):
            assert not stage.get("params"), f"{name} lists params {stage['params']} but reads none"
