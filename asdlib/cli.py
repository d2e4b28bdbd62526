"""The ``asd`` command: download and prepare corpora, score recordings with a trained
detector, compare two systems' scores.

    asd download <corpus> <target_dir> [--types ...] [--mirror BASE_URL] [--manifest FILE] ...
    asd prepare  <corpus> <corpus_dir> <manifest_out> [--types ...] [--path-base DIR] ...
    asd score    <model_dir> <audio or folder> ... --machine-type T --machine-id ID --out FILE
    asd score    <model_dir> --manifest FILE [--splits ...] [--conditions ...] --out FILE
    asd compare  <scores_a.csv> <scores_b.csv> [--column NAME] [--column-b NAME] ...
    asd compare  <a_run1.csv> <a_run2.csv> ... --vs <b_run1.csv> <b_run2.csv> ...

Exit status: 0 on success, 2 on bad input (unknown corpus or option value, missing
folder, archive list, corpus layout problems, clips that are not audio), 1 when a download
or extraction fails (network, checksum, corrupt or unsafe archive, disk), 130 when
interrupted (Ctrl-C).
Expected errors print one line, no traceback; set ``ASD_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from asdlib.allocator import keep_freed_memory
from asdlib.audio import channel_count
from asdlib.config import load_yaml, parse
from asdlib.corpora import archives, audioset_music, dcase2020, mimii, noisex92
from asdlib.corpora.archives import ArchiveError, ExtractionError
from asdlib.corpora.dcase_layout import CorpusLayoutError, scan_dcase_layout
from asdlib.corpora.download import DownloadError, DownloadSettings
from asdlib.corpus_checks import check_corpus
from asdlib.decisions import DecisionSettings, decision_metrics
from asdlib.extraction import MseRecord
from asdlib.fileio import atomic_path
from asdlib.manifest import ManifestError, read_manifest, write_manifest
from asdlib.metrics import NORMAL_SCORES_FILE, evaluate_scores, read_scores, write_scores
from asdlib.model_card import MODEL_CARD_FILE, ModelCard, read_model_card
from asdlib.mse import MseSettings
from asdlib.parallel import ParallelSettings
from asdlib.conditions import condition_order
from asdlib.significance import BootstrapSettings, compare_runs, holm, outside_training
from asdlib.store import file_digest

DOWNLOADABLE = ("dcase2020", "mimii", "noisex92", "audioset_music")
PREPARABLE = ("dcase2020", "mimii", "noisex92", "audioset_music", "folder")
ESTIMATE_RATE = 20e6  # bytes per second for the --dry-run time estimate


class UsageError(ValueError):
    """Bad command-line input that argparse cannot catch by itself."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asd`` command; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"asd: interrupted; {args.on_interrupt}", file=sys.stderr)
        return 130
    except (DownloadError, ExtractionError, OSError) as exc:
        if os.environ.get("ASD_DEBUG"):
            raise
        print(f"asd: error: {exc}", file=sys.stderr)
        return 1
    except (UsageError, CorpusLayoutError, ManifestError, ArchiveError, ValueError) as exc:
        if os.environ.get("ASD_DEBUG"):
            raise
        print(f"asd: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asd", description="Anomalous sound detection: corpus tools, "
                                                             "scoring with trained detectors and score "
                                                             "comparison.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,prepare,score,compare}")

    d = sub.add_parser("download", help="download, verify and extract a corpus",
                       description="Download, verify (md5/size or pinned sha256) and extract a corpus. "
                                   "Safe to interrupt and rerun: finished archives are skipped, partial "
                                   "downloads resume.")
    d.add_argument("corpus", choices=DOWNLOADABLE)
    d.add_argument("target_dir", type=Path)
    d.add_argument("--types", nargs="+", metavar="TYPE", help="machine types (dcase2020, mimii; default all)")
    d.add_argument("--parts", nargs="+", choices=dcase2020.PARTS, help="dcase2020 parts (default all)")
    d.add_argument("--snr", nargs="+", type=int, choices=(-6, 0, 6), help="mimii SNR levels in dB (default all)")
    d.add_argument("--names", nargs="+", metavar="NAME", help="noisex92 recordings (default all 15)")
    d.add_argument("--lists", nargs="+", choices=audioset_music.SEGMENT_LISTS,
                   help="audioset_music segment lists (default all)")
    d.add_argument("--mirror", metavar="BASE_URL", help="replace everything before the file name of each URL")
    d.add_argument("--manifest", type=Path, metavar="FILE", help="archive list replacing the packaged archives.json")
    d.add_argument("--remove-archives", action="store_true",
                   help="dcase2020, mimii: delete each archive after extraction")
    d.add_argument("--retries", type=int, default=5, help="retries per file on dropped connections (default 5)")
    d.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    d.add_argument("--dry-run", action="store_true", help="list the files, sizes and an estimated time only")
    d.set_defaults(run=_download, on_interrupt="run the same command again to resume")

    p = sub.add_parser("prepare", help="write the manifest CSV of a corpus folder",
                       description="Scan a corpus folder strictly, read every clip's header and write its "
                                   "manifest CSV: files that are not audio are errors, what only the "
                                   "pipeline refuses (another rate than 16 kHz, clips of several lengths, "
                                   "IDs without training clips or with one label only) warnings "
                                   "(noisex92: convert to 16 kHz and write the noise table).")
    p.add_argument("corpus", choices=PREPARABLE)
    p.add_argument("corpus_dir", type=Path)
    p.add_argument("manifest_out", type=Path)
    p.add_argument("--types", nargs="+", metavar="TYPE", help="machine types (default all found)")
    p.add_argument("--snr", nargs="+", type=int, choices=(-6, 0, 6), help="mimii SNR levels (default all found)")
    p.add_argument("--channel", type=int, default=0, help="mimii microphone channel 0-7 (default 0)")
    p.add_argument("--seed", type=int, default=0, help="mimii split seed (default 0)")
    p.add_argument("--path-base", type=Path, metavar="DIR",
                   help="write clip paths relative to DIR when inside it (default: absolute paths)")
    p.add_argument("--ground-truth", type=Path, metavar="FILE",
                   help="dcase2020/folder: eval_data_list.csv (default <corpus_dir>/eval_data_list.csv if present)")
    p.add_argument("--dataset", default="folder", help="folder: dataset name in the manifest (default folder)")
    p.add_argument("--lists", type=Path, metavar="DIR",
                   help="audioset_music: folder with the segment CSVs (from `asd download audioset_music`)")
    p.add_argument("--out-dir", type=Path, metavar="DIR",
                   help="noisex92: where the 16 kHz WAVs go (default <corpus_dir>/16k)")
    p.set_defaults(run=_prepare, on_interrupt="run the same command again to resume")

    s = sub.add_parser("score", help="score recordings with a trained detector",
                       description="Score audio files, or the clips of a manifest, with a detector the "
                                   "pipeline trained (a folder data/models/<model>/<input>/<condition>; "
                                   "everything scoring needs is in its model files and model card). Writes a score "
                                   "table as the pipeline's data/scores/*.csv (higher = more anomalous), "
                                   "which `asd compare` reads. A detector trained on MSE output "
                                   "(<input> mse) needs MSE output: --extract, or clips that are MSE output already.")
    s.add_argument("model_dir", type=Path)
    s.add_argument("audio", type=Path, nargs="*", metavar="AUDIO",
                   help="audio files or folders (every .wav / .flac under them) of one machine")
    s.add_argument("--machine-type", metavar="TYPE", help="machine type of the AUDIO (as in training)")
    s.add_argument("--machine-id", metavar="ID", help="machine ID of the AUDIO, e.g. id_00 (as in training)")
    s.add_argument("--channel", type=int, metavar="N",
                   help="channel of multichannel AUDIO to score, from 0 (as corpus.channel in training; "
                        "default 0, with a note when a file has several; mono files are scored whole, "
                        "with a note)")
    s.add_argument("--manifest", type=Path, metavar="FILE",
                   help="score this manifest's clips instead (from `asd prepare`, or data/mix/manifest.csv; "
                        "its relative paths are read from where the pipeline ran: run asd there)")
    s.add_argument("--splits", nargs="+", metavar="SPLIT", help="manifest splits scored (default all)")
    s.add_argument("--conditions", nargs="+", metavar="COND",
                   help="manifest SNR conditions scored (default all; a mixture manifest has several)")
    s.add_argument("--out", type=Path, required=True, metavar="FILE", help="score table CSV to write")
    s.add_argument("--params", type=Path, metavar="FILE",
                   help="a params.yaml to take detector settings (its detectors.<model>) and, with "
                        "--extract, MSE settings (its mse.settings) from (default: those on the folder's "
                        "model_card.json, which the train stages write; folders without one need it "
                        "for --extract)")
    s.add_argument("--extract", action="store_true",
                   help="run Mechanical Sound Extraction on each clip first, as the pipeline's mse stage")
    s.add_argument("--snr-model", type=Path, metavar="FILE",
                   help="with --extract: the SNR estimator (data/snr/model/model.pt) giving each clip's stop target")
    s.add_argument("--snr-db", type=float,
                   help="with --extract: one stop target in dB for every clip instead (default for a model "
                        "whose input was extracted at one fixed SNR: that SNR)")
    s.add_argument("--resample", action="store_true", help="convert audio at other sample rates to 16 kHz")
    s.add_argument("--device", default="auto",
                   help="torch device: auto (default: CUDA when available, else the CPU), cpu, cuda, cuda:N")
    s.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's, one per core). The last bits of a score depend "
                        "on it: the pipeline's train stages score with cores // train.workers threads (1 on "
                        "2 cores by default); give that count to get their scores byte for byte")
    s.add_argument("--jobs", type=int, default=-1, help="processes for --extract (default -1: one per core)")
    s.add_argument("--quantile", type=float, metavar="Q",
                   help="decision threshold: this quantile of a gamma fit to each machine ID's training "
                        "normals' scores (default: --params' evaluate.decision.quantile, else 0.9)")
    s.set_defaults(run=_score, on_interrupt="nothing was written (the score table is written at the end)")

    c = sub.add_parser("compare", help="is one score table's mean AUC really above another's?",
                       description="Mean AUC of two systems scored on the same test clips (e.g. "
                                   "data/scores/<model>/<input>.csv of an experiment and of the workspace; "
                                   "rows of split train, the clips the models were fitted to, are left out), "
                                   "per condition, with paired bootstrap intervals of each and of the "
                                   "difference A - B. Several tables per side (A's runs, then --vs and "
                                   "B's runs: e.g. training seeds) make the intervals hold the spread "
                                   "between runs too. p: of no difference; '*': the difference's "
                                   "interval excludes 0; '†': p survives Holm's correction over the "
                                   "conditions shown.")
    c.add_argument("scores_a", type=Path, nargs="+", metavar="A.csv",
                   help="A's score table and B's; or, with --vs, every run of A")
    c.add_argument("--vs", type=Path, nargs="+", metavar="B.csv", help="every run of B")
    c.add_argument("--column", default="score", help="score column of A (default score)")
    c.add_argument("--column-b", help="score column of B (default: the same as A)")
    c.add_argument("--resamples", type=int, default=2000, help="bootstrap redraws (default 2000)")
    c.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default 0.95)")
    c.add_argument("--seed", type=int, default=0, help="seed of the redraws (default 0)")
    c.set_defaults(run=_compare, on_interrupt="nothing was written")
    return parser


def _compare(args: argparse.Namespace) -> int:
    settings = BootstrapSettings(resamples=args.resamples, confidence=args.confidence, seed=args.seed)
    if args.vs is None and len(args.scores_a) != 2:
        raise UsageError(f"compare: give two score tables (A B), or A's runs then --vs and B's runs; "
                         f"got {len(args.scores_a)} and no --vs")
    paths_a, paths_b = (args.scores_a, args.vs) if args.vs is not None else (args.scores_a[:1], args.scores_a[1:])
    column_b = args.column_b or args.column
    tables_a = [_score_table(path, args.column) for path in paths_a]
    tables_b = [_score_table(path, column_b) for path in paths_b]
    result = compare_runs(tables_a, tables_b, settings)
    tables = [table for table, _, _ in tables_a + tables_b]
    tested = [outside_training(table) for table in tables]
    left_out = condition_order(sorted({c for table in tested for c in table["condition"]} - set(result)))
    trained = any(len(kept) < len(table) for kept, table in zip(tested, tables))
    for name, paths, column in (("A", paths_a, args.column), ("B", paths_b, column_b)):
        runs = f"mean of {len(paths)} runs: " if len(paths) > 1 else ""
        print(f"{name}: {runs}{', '.join(map(str, paths))} ({column})")
    spread = " and between runs" if len(paths_a) > 1 or len(paths_b) > 1 else ""
    print(f"mean AUC [{settings.confidence:.0%} interval], paired bootstrap over the test clips{spread} "
          f"({settings.resamples} redraws)" + ("; the tables' training clips are left out" if trained else ""))
    print(f"{'condition':<10} {'A':<22} {'B':<22} {'A - B':<25} p")
    order = condition_order(list(result))
    survives = dict(zip(order, holm([result[c].difference.p for c in order], 1.0 - settings.confidence)))
    for condition in order:
        row = result[condition]
        marks = ("*" if row.difference.excludes_zero() else "") + ("†" if survives[condition] else "")
        print(f"{condition:<10} {row.a.text():<22} {row.b.text():<22} {row.difference.text(signed=True):<25} "
              f"{row.difference.p:.4f} {marks}".rstrip())
    conditions = f"{len(order)} conditions" if len(order) > 1 else "one condition"
    print(f"*: the interval excludes 0; †: p also survives Holm's correction over the {conditions}")
    if left_out:
        print(f"left out (not in every table): {', '.join(left_out)}")
    if spread:
        print("each run's mean AUC:")
        for condition in order:
            row = result[condition]
            print(f"{condition:<10} A: {' '.join(f'{v:.3f}' for v in row.runs_a)}   "
                  f"B: {' '.join(f'{v:.3f}' for v in row.runs_b)}")
    return 0


def _score(args: argparse.Namespace) -> int:
    parallel = _checked_score_options(args)
    params = load_yaml(args.params) if args.params is not None else None
    quantile = _decision_quantile(args, params)
    from asdlib import inference  # torch: loaded only by the command that needs it

    _check_device(args.device)
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    rows = _rows_to_score(args)
    card = read_model_card(args.model_dir)
    extraction = None
    _input_note(args, card, rows)
    if args.extract:
        extraction = inference.Extraction(*_extraction_settings(args, params, card))
    elif args.snr_model is not None or args.snr_db is not None:
        raise UsageError("score: --snr-model and --snr-db only apply with --extract")
    detectors = (params.get("detectors") or {}) if params is not None else None
    name, detector = inference.load_detector(args.model_dir, detectors, args.device)
    normals, note = inference.training_normals(args.model_dir, detector)
    if note:
        print(f"note: {note}")
    load = partial(inference.read_recording, resample=args.resample)
    scores = inference.score_recordings(detector, rows, load, extraction, parallel)
    table = inference.recording_table(rows, scores)
    flags = inference.decisions(normals, table, quantile, getattr(detector.settings, "score", ""),
                                args.model_dir / NORMAL_SCORES_FILE)
    if flags is not None:
        table = table.join(flags)
    write_scores(args.out, table)
    print(f"{name} ({args.model_dir}): {_count(len(table), 'clip')} scored -> {args.out}")
    if flags is None:
        unused = f"; --quantile {args.quantile:g} goes unused" if args.quantile is not None else ""
        print(f"no decisions: {args.model_dir} has no {NORMAL_SCORES_FILE} (trained before thresholds were "
              f"kept){unused}")
    else:
        decided = flags["decision"].notna()
        if decided.any():
            print(f"{int(flags['decision'].sum())} of {int(decided.sum())} clips flagged anomalous (threshold: "
                  f"the {quantile:g} quantile of a gamma fit to each machine ID's training normals' scores)")
        undecided = int((~decided).sum())
        if undecided:
            print(f"{_count(undecided, 'clip')} without a decision: {'its' if undecided == 1 else 'their'} "
                  "machine ID had no training clips")
    _print_auc(table, flags is not None)
    return 0


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 clip", "3 clips"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _input_note(args: argparse.Namespace, card: Optional[ModelCard], rows: pd.DataFrame) -> None:
    """Say when the clips scored are not the kind of audio the model was trained on: MSE
    output extracted again, or raw audio for a model of MSE output and the reverse."""
    extracted = "mse_snr_db" in rows  # the mse stage's manifest: clips that are MSE output
    if args.extract and extracted:
        print(f"note: {args.manifest} lists MSE output (it has an mse_snr_db column); --extract extracts "
              "these clips again")
    elif card is not None and (card.input == "mse") != args.extract and not extracted:
        print(f"note: {args.model_dir} was trained on {card.input} audio (its {MODEL_CARD_FILE}); "
              + ("without --extract these clips are scored as given, which is right only if they are "
                 "MSE output already (data/mse/manifest.csv)" if card.input == "mse" else
                 "--extract gives it MSE output, which it never saw in training"))


def _checked_score_options(args: argparse.Namespace) -> ParallelSettings:
    """Refuse bad ``score`` option values before any model or audio is read; return the
    settings of the --extract workers."""
    _check_output_path(args.out)
    for option, path, what in (("--manifest", args.manifest, "the manifest CSV"),
                               ("--params", args.params, "a params.yaml"),
                               ("--snr-model", args.snr_model, "the SNR estimator's model.pt")):
        if path is not None and path.is_dir():
            raise UsageError(f"score {option} {path}: a folder; give {what}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"score --threads {args.threads}: give 1 or more")
    if args.snr_db is not None and not abs(args.snr_db) < float("inf"):
        raise UsageError(f"score --snr-db {args.snr_db}: give a finite number of dB")
    try:
        return ParallelSettings(n_jobs=args.jobs)
    except ValueError as exc:
        raise UsageError(f"score --jobs {args.jobs}: {exc}") from exc


def _check_output_path(out: Path) -> None:
    """``score --out`` must name a file that can be made: not a folder, nor under a file."""
    if out.is_dir():
        raise UsageError(f"score --out {out}: a folder; give the file name of the score table to write")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"score --out {out}: {blocking} is a file, not a folder")


def _check_device(spec: str) -> None:
    """``--device`` must name a device this machine has (``cuda`` without CUDA is refused)."""
    from asdlib.training import resolve_device

    try:
        resolve_device(spec)
    except ValueError as exc:
        raise UsageError(f"score --device {spec}: {exc}") from exc


def _print_auc(table: pd.DataFrame, decided: bool) -> None:
    """Mean AUC and pAUC (and F1 where every clip was decided) per condition of the labelled
    clips outside the training split, over the machine IDs that have both labels."""
    labelled = table[(table["label"] != "unknown") & (table["split"] != "train")]
    if labelled.empty:
        return
    if (table["split"] == "train").any():
        print("AUC and F1 below leave out the training clips (the model was fitted on them)")
    keys = ["condition", "machine_type", "machine_id"]
    complete = labelled.groupby(keys)["label"].transform("nunique").eq(2)
    if not complete.all():
        lacking = labelled.loc[~complete, keys].drop_duplicates()
        print("AUC leaves out machine IDs without both normal and anomalous clips: "
              + ", ".join(f"{t}/{i} ({c})" for c, t, i in lacking.itertuples(index=False)))
        labelled = labelled[complete]
    for condition in condition_order(sorted(set(labelled["condition"]))):
        rows_of = labelled[labelled["condition"] == condition]
        overall = evaluate_scores(rows_of)["overall"]
        line = f"{condition}: mean AUC {overall['auc']:.3f}, pAUC {overall['pauc']:.3f}"
        if decided and rows_of["decision"].notna().all():
            thresholds = {(str(r.machine_type), str(r.machine_id)): float(r.threshold)
                          for r in rows_of.itertuples()}
            line += f", F1 {decision_metrics(rows_of, 'score', thresholds)['overall']['f1']:.3f}"
        print(line + " over the machine types")


def _extraction_settings(args: argparse.Namespace, params: Optional[dict],
                         card: Optional[ModelCard]) -> tuple[MseSettings, Optional[Path], Optional[float]]:
    """MSE settings and stop target of ``score --extract``: --params' mse.settings, else the
    model card's; --snr-model or --snr-db, else the card's fixed target if it had one."""
    record = (parse(MseRecord, card.extraction, f"{args.model_dir / MODEL_CARD_FILE}: extraction")
              if card is not None and card.extraction is not None else None)
    made = record.params if record is not None else None
    if params is not None:
        mse = parse(MseSettings, (params.get("mse") or {}).get("settings"), f"{args.params}: mse.settings")
        if made is not None and made.settings != mse:
            print(f"note: {args.params}: mse.settings differ from those the model's input was extracted "
                  f"with ({args.model_dir / MODEL_CARD_FILE}); extracting with --params' as asked")
    elif made is not None:
        mse = made.settings
    elif card is not None and card.input == "raw":
        raise UsageError(f"score --extract: {args.model_dir} was trained on raw audio, so its model card names "
                         "no MSE settings; give --params, a params.yaml whose mse.settings to extract with")
    else:
        raise UsageError(f"score --extract: {args.model_dir} has no model card saying how its MSE input was "
                         f"made; give --params, the params.yaml whose mse.settings it was made with")
    snr_db = args.snr_db
    if args.snr_model is None and snr_db is None and made is not None and made.snr_source == "fixed":
        snr_db = made.fixed_snr_db
    if (args.snr_model is None) == (snr_db is None):
        source = f" (its input was stopped at {made.snr_source} SNRs)" if made is not None else ""
        raise UsageError(f"score --extract: give one of --snr-model (the SNR estimator) and --snr-db{source}")
    if (args.snr_model is not None and record is not None and record.snr_model_sha256
            and args.snr_model.is_file() and file_digest(args.snr_model) != record.snr_model_sha256):
        print(f"note: {args.snr_model} is not the SNR estimator whose estimates stopped the extraction of "
              f"the model's input ({args.model_dir / MODEL_CARD_FILE}); the MSE output will differ from it")
    return mse, args.snr_model, snr_db


def _decision_quantile(args: argparse.Namespace, params: Optional[dict]) -> float:
    """--quantile, else the params file's evaluate.decision.quantile, else the default rule's."""
    if args.quantile is not None:
        try:
            return DecisionSettings(quantile=args.quantile).quantile
        except ValueError as exc:
            raise UsageError(f"score --quantile {args.quantile:g}: {exc}") from exc
    section = ((params or {}).get("evaluate") or {}).get("decision")
    return parse(DecisionSettings, section, f"{args.params}: evaluate.decision").quantile


def _rows_to_score(args: argparse.Namespace) -> pd.DataFrame:
    """The clips ``asd score`` was asked for: a manifest's (filtered) or the audio files'."""
    from asdlib.inference import recording_rows

    if args.manifest is not None:
        if args.audio or args.machine_type or args.machine_id or args.channel is not None:
            raise UsageError("score: give either --manifest or audio files with --machine-type/--machine-id "
                             "(and --channel)")
        rows = read_manifest(args.manifest)
        if args.conditions and "condition" not in rows:
            raise UsageError(f"{args.manifest}: no condition column (not a mixture manifest)")
        for column, chosen in (("split", args.splits), ("condition", args.conditions)):
            present = sorted(set(rows[column].astype(str))) if chosen else []
            absent = [value for value in chosen or [] if value not in present]
            if absent:
                raise UsageError(f"{args.manifest}: no clips of {column} {', '.join(absent)} (it has "
                                 f"{', '.join(present)})")
        if args.splits:
            rows = rows[rows["split"].isin(args.splits)]
        if args.conditions:
            rows = rows[rows["condition"].isin(args.conditions)]
        if rows.empty:
            raise UsageError(f"{args.manifest}: no clip of splits {args.splits or 'any'} and conditions "
                             f"{args.conditions or 'any'}")
        _check_audio_paths(args.manifest, rows)
        return rows.reset_index(drop=True)
    if not args.audio:
        raise UsageError("score: give audio files or folders, or --manifest")
    if not args.machine_type or not args.machine_id:
        raise UsageError("score: audio files need --machine-type and --machine-id (the machine they are of)")
    if args.splits or args.conditions:
        raise UsageError("score: --splits and --conditions choose a manifest's clips; audio files are all scored")
    rows = recording_rows(args.audio, args.machine_type, args.machine_id, args.channel or 0)
    _channel_note(rows, args.channel)
    return rows


def _channel_note(rows: pd.DataFrame, channel: Optional[int]) -> None:
    """One note for the run where the files' channels and --channel do not say the same:
    several channels without --channel (channel 0 is scored), or mono files with a
    --channel above 0 (their one channel is scored)."""
    if channel is None:
        several = [path for path in rows["path"] if channel_count(path) > 1]
        if several:
            print(f"note: {len(several)} of {len(rows)} files have several channels (e.g. {several[0]}); "
                  "scoring channel 0, give --channel for another")
    elif channel > 0:
        mono = [path for path in rows["path"] if channel_count(path) == 1]
        if mono:
            print(f"note: --channel {channel}: {len(mono)} of {len(rows)} files are mono (e.g. {mono[0]}); "
                  "scoring their one channel")


def _check_audio_paths(manifest: Path, rows: pd.DataFrame) -> None:
    """Every shard (``store``) or audio file (``path``) the rows are read from must exist, so
    that a manifest read from the wrong folder fails before any work, saying so."""
    store = rows["store"] if "store" in rows else pd.Series(None, index=rows.index, dtype=object)
    paths = store.where(store.notna(), rows["path"]).astype(str).unique()
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        relative = "" if Path(missing[0]).is_absolute() else (
            f" from {Path.cwd()}: relative paths are read from the folder asd runs in (run it where the "
            "manifest was made, e.g. where the pipeline ran)")
        raise UsageError(f"{manifest}: {len(missing)} of the files its clips are read from not found, "
                         f"e.g. {missing[0]}{relative}")


def _score_table(path: Path, column: str) -> tuple[pd.DataFrame, str, str]:
    if not path.is_file():
        raise UsageError(f"{path}: no such score table")
    return read_scores(path), column, str(path)


def _download(args: argparse.Namespace) -> int:
    snr = [f"{v}dB" for v in args.snr] if args.snr else None
    _reject_options(args, "download", {"dcase2020": ("types", "parts", "remove_archives"),
                                       "mimii": ("types", "snr", "remove_archives"),
                                       "noisex92": ("names",), "audioset_music": ("lists",)})
    settings = _download_settings(args)
    if args.dry_run:
        return _dry_run(args, snr)
    common = {"mirror": args.mirror, "manifest": args.manifest, "settings": settings}
    if args.corpus == "dcase2020":
        dcase2020.download_dcase2020(args.target_dir, machine_types=args.types, parts=args.parts or dcase2020.PARTS,
                                     keep_archives=not args.remove_archives, **common)
    elif args.corpus == "mimii":
        mimii.download_mimii(args.target_dir, machine_types=args.types, snr_levels=snr,
                             keep_archives=not args.remove_archives, **common)
    elif args.corpus == "noisex92":
        noisex92.download_noisex92(args.target_dir, names=args.names, **common)
    else:
        audioset_music.download_audioset_lists(args.target_dir, lists=args.lists or audioset_music.SEGMENT_LISTS,
                                               **common)
    print(f"{args.corpus}: complete in {args.target_dir}")
    return 0


def _download_settings(args: argparse.Namespace) -> DownloadSettings:
    """--retries and --timeout as download settings; a bad value is an error naming its option."""
    if args.retries < 0:
        raise UsageError(f"download --retries {args.retries}: give 0 or more")
    if not 0 < args.timeout < float("inf"):
        raise UsageError(f"download --timeout {args.timeout:g}: give a finite number of seconds above 0")
    return DownloadSettings(retries=args.retries, timeout_s=args.timeout)


def _dry_run(args: argparse.Namespace, snr: list[str] | None) -> int:
    common = {"mirror": args.mirror, "manifest": args.manifest}
    if args.corpus == "dcase2020":
        entries = dcase2020.dcase2020_entries(machine_types=args.types, parts=args.parts or dcase2020.PARTS, **common)
    elif args.corpus == "mimii":
        entries = mimii.mimii_entries(machine_types=args.types, snr_levels=snr, **common)
    elif args.corpus == "noisex92":
        entries = noisex92.noisex92_entries(names=args.names, **common)
    else:
        wanted = {"ontology", *(args.lists or audioset_music.SEGMENT_LISTS)}
        entries = [e for e in archives.corpus_archives("audioset_music", **common) if e.part in wanted]
    known = sum(e.size for e in entries if e.size)
    unknown = sum(1 for e in entries if not e.size)
    for e in entries:
        size = f"{e.size / 1e9:8.2f} GB" if e.size else "    size ?"
        print(f"{size}  {e.url}")
    if not known:
        print(f"{len(entries)} files, of unknown size (the archive list gives none)")
        return 0
    print(f"{len(entries)} files, {known / 1e9:.2f} GB known"
          + (f" + {unknown} of unknown size" if unknown else "")
          + f"; about {known / ESTIMATE_RATE / 60:.0f} min at {ESTIMATE_RATE / 1e6:.0f} MB/s"
          + (" for the known part" if unknown else ""))
    return 0


def _prepare(args: argparse.Namespace) -> int:
    _reject_options(args, "prepare", {
        "dcase2020": ("types", "path_base", "ground_truth"),
        "folder": ("types", "path_base", "ground_truth", "dataset"),
        "mimii": ("types", "snr", "channel", "seed", "path_base"),
        "noisex92": ("out_dir",),
        "audioset_music": ("lists", "path_base"),
    })
    if not args.corpus_dir.is_dir():
        raise UsageError(f"{args.corpus_dir}: corpus folder not found")
    if args.manifest_out.is_dir():
        raise UsageError(f"prepare: {args.manifest_out} is a folder; give the file name of the manifest to write")
    if args.corpus == "noisex92":
        table = noisex92.prepare_noisex92(args.corpus_dir, args.out_dir or args.corpus_dir / "16k")
        with atomic_path(args.manifest_out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6f", lineterminator="\n")
        print(f"noisex92: {len(table)} recordings at 16 kHz, table in {args.manifest_out}")
        return 0
    if args.corpus == "dcase2020":
        df = dcase2020.prepare_dcase2020(args.corpus_dir, machine_types=args.types, path_base=args.path_base,
                                         ground_truth=args.ground_truth)
    elif args.corpus == "folder":
        truth = dcase2020.read_ground_truth(args.ground_truth) if args.ground_truth else None
        df = scan_dcase_layout(args.corpus_dir, dataset=args.dataset, machine_types=args.types,
                               path_base=args.path_base, ground_truth=truth)
    elif args.corpus == "mimii":
        df = mimii.prepare_mimii(args.corpus_dir, machine_types=args.types,
                                 snr_levels=[f"{v}dB" for v in args.snr] if args.snr else None,
                                 channel=args.channel, seed=args.seed, path_base=args.path_base)
    else:
        if args.lists is None:
            raise UsageError("audioset_music needs --lists DIR (the folder of `asd download audioset_music`)")
        match = audioset_music.match_music_files(
            args.corpus_dir, audioset_music.select_music_segments(args.lists), path_base=args.path_base)
        print(f"audioset_music: {match.summary()}")
        if match.manifest is None:
            raise CorpusLayoutError(f"{args.corpus_dir}: no audio file matches a selected music segment")
        df = match.manifest
    if args.corpus != "audioset_music":
        _check_clips(df, args.corpus_dir, args.path_base)
    write_manifest(df, args.manifest_out)
    counts = ", ".join(f"{k} {v}" for k, v in df.groupby("split").size().items())
    print(f"{args.corpus}: {len(df)} clips ({counts}) -> {args.manifest_out}")
    return 0


def _check_clips(df: pd.DataFrame, corpus_dir: Path, path_base: Optional[Path]) -> None:
    """Refuse a manifest of clips no reader can use (not audio, empty, without the channel);
    print one warning line for each kind of problem only the pipeline refuses (another rate
    than 16 kHz, several lengths, IDs without training clips or with one label only): such a
    manifest still serves `asd score`, whose autoencoders score clips of any length and any
    ID, with --resample for the rate, and the pipeline has settings for two of them
    (corpus.resample, corpus.clip_seconds). Same checks as the manifest stage."""
    problems = check_corpus(df, path_base=path_base)
    problems.raise_if_any(str(corpus_dir), pipeline=False)
    for line in problems.pipeline:
        print(f"asd: warning: the pipeline would refuse these: {line}", file=sys.stderr)


_DEFAULTS = {"channel": 0, "seed": 0, "dataset": "folder", "remove_archives": False}


def _reject_options(args: argparse.Namespace, command: str, allowed: dict[str, tuple[str, ...]]) -> None:
    """Refuse options given for a corpus that does not use them (rather than ignoring them)."""
    options = {"types", "parts", "snr", "names", "lists", "path_base", "ground_truth", "dataset",
               "channel", "seed", "out_dir", "remove_archives"}
    given = [o for o in sorted(options) if hasattr(args, o)
             and getattr(args, o) not in (None, _DEFAULTS.get(o))]
    bad = [o for o in given if o not in allowed[args.corpus]]
    if bad:
        flags = ", ".join("--" + o.replace("_", "-") for o in bad)
        raise UsageError(f"{command} {args.corpus}: option {flags} does not apply to this corpus")


def console_main() -> int:
    """The ``asd`` command: :func:`main` in a process that keeps freed memory for reuse
    (:mod:`asdlib.allocator`; scoring runs detectors on many clips)."""
    keep_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
