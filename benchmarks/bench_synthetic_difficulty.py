"""How hard is the built-in synthetic corpus? Generation speed and baseline detection figures.

Generates the corpus (default settings unless overridden) into a temporary
folder, timing it; reads the WAVs back; computes the DCASE 2020 baseline front end
(Slaney log-mel, 128 bands, 5-frame 640-dim context vectors, asdlib.features);
trains one detector per machine type on the training clips (the DCASE baseline's
dense autoencoder, 100 epochs as published: with this little data 30 epochs
leave it far from converged and its AUCs swing by about 0.05 with the seed) and
scores each test clip by its mean reconstruction error. Prints per-ID AUC / pAUC, per-type and
overall means, AUC per fault kind, and the AUC of loudness alone (clip RMS, and
its two-sided distance from the ID's training RMS) to show that anomalies are not
given away by level.

    .venv/bin/python benchmarks/bench_synthetic_difficulty.py              # dense AE, ~4 min
    .venv/bin/python benchmarks/bench_synthetic_difficulty.py --detector pca  # quick proxy
    .venv/bin/python benchmarks/bench_synthetic_difficulty.py --test-normal 40 --test-anomaly 60
        # more test clips than the default corpus: steadier per-ID and per-fault figures
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from asdlib.audio import read_audio
from asdlib.corpora.synthetic import SyntheticSettings, clip_fault, clip_specs, generate_synthetic
from asdlib.features import DCASE_BASELINE_LOGMEL, LogMel, stack_frames


def dense_autoencoder(dim: int = 640) -> torch.nn.Module:
    """The DCASE 2020 baseline: 640-128x4-8-128x4-640, BatchNorm + ReLU."""
    def block(i: int, o: int) -> list[torch.nn.Module]:
        return [torch.nn.Linear(i, o), torch.nn.BatchNorm1d(o), torch.nn.ReLU()]
    sizes = [dim, 128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers = [m for i, o in zip(sizes[:-1], sizes[1:]) for m in block(i, o)]
    return torch.nn.Sequential(*layers, torch.nn.Linear(128, dim))


def train_ae(vectors: np.ndarray, epochs: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = dense_autoencoder(vectors.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.from_numpy(vectors)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(data), generator=generator).split(512):
            x = data[batch]
            if len(x) < 2:
                continue
            loss = torch.mean((model(x) - x) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


def auc_pair(normal: list[float], anomaly: list[float]) -> tuple[float, float]:
    y = np.r_[np.zeros(len(normal)), np.ones(len(anomaly))]
    s = np.r_[normal, anomaly]
    return roc_auc_score(y, s), roc_auc_score(y, s, max_fpr=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detector", choices=("ae", "pca"), default="ae")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--pca-components", type=int, default=16)
    parser.add_argument("--seed", type=int, default=SyntheticSettings().seed)
    parser.add_argument("--n-jobs", type=int, default=1, help="generation workers")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--types", nargs="*", default=None)
    parser.add_argument("--test-normal", type=int, default=None, help="override test normal clips per ID")
    parser.add_argument("--test-anomaly", type=int, default=None, help="override test anomaly clips per ID")
    parser.add_argument("--keep", type=Path, default=None, help="generate here instead of a temp dir")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {"machine_types": args.types, "test_normal_per_id": args.test_normal,
                 "test_anomaly_per_id": args.test_anomaly}
    settings = SyntheticSettings(seed=args.seed, **{k: v for k, v in overrides.items() if v})
    frontend = LogMel(DCASE_BASELINE_LOGMEL)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        start = time.perf_counter()
        count = generate_synthetic(root, settings, n_jobs=args.n_jobs)
        elapsed = time.perf_counter() - start
        audio_s = count * settings.clip_seconds
        print(f"generation: {count} clips ({audio_s:.0f} s of audio) in {elapsed:.1f} s with "
              f"n_jobs={args.n_jobs}: {count / elapsed:.1f} clips/s, {audio_s / elapsed:.0f}x real time")
        specs = clip_specs(settings)
        waves = {s: read_audio(root / s.relative_path, sample_rate=settings.sample_rate) for s in specs}

    guarded = defaultdict(int)
    for s, w in waves.items():
        if np.max(np.abs(w)) > 0.975:
            guarded[f"{s.machine_type}/{s.label}"] += 1
    peak = max(float(np.max(np.abs(w))) for w in waves.values())
    print(f"peaks: max {peak:.3f}; clips scaled down by the clipping guard: {dict(guarded) or 0}")
    with torch.no_grad():
        vectors = {s: stack_frames(frontend(torch.from_numpy(w))).numpy() for s, w in waves.items()}
    rms_db = {s: 10 * np.log10(np.mean(np.square(w, dtype=np.float64)) + 1e-20) for s, w in waves.items()}

    rows, by_kind = [], defaultdict(list)
    start = time.perf_counter()
    for machine_type in settings.machine_types:
        train = np.concatenate([vectors[s] for s in specs if s.machine_type == machine_type and s.split == "train"])
        if args.detector == "ae":
            model = train_ae(train, args.epochs, seed=0)
            def score(v: np.ndarray) -> float:
                with torch.no_grad():
                    x = torch.from_numpy(v)
                    return float(torch.mean((model(x) - x) ** 2))
        else:
            pca = PCA(args.pca_components, random_state=0).fit(train)
            def score(v: np.ndarray) -> float:
                return float(np.mean((pca.inverse_transform(pca.transform(v)) - v) ** 2))
        for m in range(settings.ids_per_type):
            mine = [s for s in specs if s.machine_type == machine_type and s.machine_index == m]
            train_rms = np.array([rms_db[s] for s in mine if s.split == "train"])
            normal = [s for s in mine if s.split == "test" and s.label == "normal"]
            anomaly = [s for s in mine if s.label == "anomaly"]
            det = {s: score(vectors[s]) for s in normal + anomaly}
            auc, pauc = auc_pair([det[s] for s in normal], [det[s] for s in anomaly])
            loud = auc_pair([rms_db[s] for s in normal], [rms_db[s] for s in anomaly])[0]
            z = {s: abs(rms_db[s] - train_rms.mean()) / train_rms.std() for s in normal + anomaly}
            loud_z = auc_pair([z[s] for s in normal], [z[s] for s in anomaly])[0]
            rows.append((machine_type, normal[0].machine_id, auc, pauc, loud, loud_z))
            faults = {s: clip_fault(s.machine_type, s.machine_index, s.split, s.label, s.index, settings)
                      for s in anomaly}
            for kind in sorted({f.kind for f in faults.values()}):
                these = [s for s in anomaly if faults[s].kind == kind]
                by_kind[(machine_type, kind)].append((
                    auc_pair([det[s] for s in normal], [det[s] for s in these])[0],
                    auc_pair([rms_db[s] for s in normal], [rms_db[s] for s in these])[0],
                    len(these)))
    size = f"{args.epochs} epochs" if args.detector == "ae" else f"{args.pca_components} components"
    print(f"detector: {args.detector} ({size}),"
          f" train+score {time.perf_counter() - start:.1f} s")

    print(f"\n{'type':8s} {'id':6s} {'AUC':>6s} {'pAUC':>6s} {'RMS AUC':>8s} {'|z| RMS AUC':>12s}")
    type_means = []
    for machine_type in settings.machine_types:
        mine = [r for r in rows if r[0] == machine_type]
        for r in mine:
            print(f"{r[0]:8s} {r[1]:6s} {r[2]:6.3f} {r[3]:6.3f} {r[4]:8.3f} {r[5]:12.3f}")
        mean = np.mean([r[2:] for r in mine], axis=0)
        type_means.append(mean)
        print(f"{machine_type:8s} {'mean':6s} {mean[0]:6.3f} {mean[1]:6.3f} {mean[2]:8.3f} {mean[3]:12.3f}"
              f"   (mAUC {min(r[2] for r in mine):.3f})")
    overall = np.mean(type_means, axis=0)
    print(f"{'overall':8s} {'mean':6s} {overall[0]:6.3f} {overall[1]:6.3f} {overall[2]:8.3f} {overall[3]:12.3f}")
    aucs = [r[2] for r in rows]
    print(f"per-ID AUC range {min(aucs):.3f} .. {max(aucs):.3f}")

    print("\nAUC per fault kind (each ID's normal test clips vs its clips with that fault; mean over IDs)")
    print(f"  {'type':8s} {'fault':14s} {'AUC':>6s} {'RMS AUC':>8s}")
    for (machine_type, kind), values in sorted(by_kind.items()):
        det_auc, rms_auc = np.mean([v[0] for v in values]), np.mean([v[1] for v in values])
        n = sum(v[2] for v in values)
        print(f"  {machine_type:8s} {kind:14s} {det_auc:6.3f} {rms_auc:8.3f}  ({n} clips)")


if __name__ == "__main__":
    main()
