"""Speed of the detector models: STgram-MFN forward+backward and clips/s for every model.

Prints two tables:

1. STgram-MFN (mfn15, mfn6) forward + backward (cross-entropy on margin logits) for
   one batch of ten-second clips (default 32), after a warm-up.
2. Throughput in clips/s for the dense AE (DCASE baseline), the Conformer AE and
   STgram-MFN at 2 s and 10 s clips: "train" = front end + forward + loss + backward
   + Adam step, "score" = front end + forward in eval mode without gradients. The
   log-mel front end is inside the timed region for every model (STgram-MFN computes
   it itself), so the figures compare whole waveform-to-loss/score paths.

Usage: ``python benchmarks/bench_models.py [--threads 2] [--device cpu]``; the
defaults (2 CPU threads, few repetitions) finish in about three minutes on a 2-core
machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from asdlib.allocator import keep_freed_memory
from asdlib.features import DCASE_BASELINE_LOGMEL, STGRAM_LOGMEL, LogMel, stack_frames
from asdlib.models.conformer_ae import ConformerAE
from asdlib.models.dense_ae import DenseAE
from asdlib.models.stgram_mfn import STgramMFN
from asdlib.training import resolve_device

SAMPLE_RATE = 16000
N_CLASSES = 41  # (machine type, ID) pairs of DCASE 2020 dev + additional training data


@dataclass
class Row:
    model: str
    seconds: int
    mode: str
    batch: int
    times: list[float]

    @property
    def per_iteration(self) -> float:
        return statistics.median(self.times)

    @property
    def clips_per_second(self) -> float:
        return self.batch / self.per_iteration


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step: Callable[[], None], warmup: int, repeats: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _dense_steps(num_samples: int, batch: int, device: torch.device):
    frontend = LogMel(DCASE_BASELINE_LOGMEL).to(device)
    model = DenseAE().to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    wave = torch.randn(batch, num_samples, device=device)

    def train() -> None:
        model.train()
        vectors = stack_frames(frontend(wave))
        loss = model.reconstruction_error(vectors).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def score() -> None:
        model.eval()
        with torch.no_grad():
            model.reconstruction_error(stack_frames(frontend(wave))).mean(dim=1).cpu()

    return train, score


def _conformer_steps(num_samples: int, batch: int, device: torch.device):
    frontend = LogMel(STGRAM_LOGMEL).to(device)
    model = ConformerAE().to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    wave = torch.randn(batch, num_samples, device=device)

    def frames() -> torch.Tensor:
        logmel = frontend(wave).transpose(1, 2)  # (batch, frames, n_mels)
        return (logmel - logmel.mean()) / logmel.std()

    def train() -> None:
        model.train()
        loss = model.reconstruction_error(frames()).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def score() -> None:
        model.eval()
        with torch.no_grad():
            model.reconstruction_error(frames()).mean(dim=1).cpu()

    return train, score


def _stgram_steps(num_samples: int, batch: int, device: torch.device, blocks: str = "mfn15"):
    model = STgramMFN(N_CLASSES, num_samples, blocks=blocks).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    wave = torch.randn(batch, num_samples, device=device)
    labels = torch.randint(0, N_CLASSES, (batch,), device=device)

    def train() -> None:
        model.train()
        logits, _ = model(wave, labels)
        loss = F.cross_entropy(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def score() -> None:
        model.eval()
        with torch.no_grad():
            logits, _ = model(wave, labels)
            (-torch.log_softmax(logits, dim=1).gather(1, labels[:, None])).cpu()

    return train, score


def _forward_backward(blocks: str, batch: int, device: torch.device):
    model = STgramMFN(N_CLASSES, 10 * SAMPLE_RATE, blocks=blocks).to(device).train()
    wave = torch.randn(batch, 10 * SAMPLE_RATE, device=device)
    labels = torch.randint(0, N_CLASSES, (batch,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        logits, _ = model(wave, labels)
        F.cross_entropy(logits, labels).backward()

    return step


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--fb-batch", type=int, default=32, help="batch for the fwd+bwd table")
    parser.add_argument("--fb-repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16, help="batch for the throughput table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator as it is (the pipeline keeps freed memory: asdlib.allocator)")
    args = parser.parse_args()
    # batches of at least 2 clips: STgram-MFN's batch norm cannot train on one
    least = {"threads": 1, "fb_batch": 2, "fb_repeats": 1, "batch": 2, "repeats": 1, "warmup": 0}
    for name, minimum in least.items():
        if getattr(args, name) < minimum:
            parser.error(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(args, name)}")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(f"--device {args.device}: {exc}")
    kept = False if args.default_malloc else keep_freed_memory()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"freed memory {'kept (as the pipeline)' if kept else 'returned to the kernel (glibc default)'}")

    fb_rows = []
    for blocks in ("mfn15", "mfn6"):
        times = _time(_forward_backward(blocks, args.fb_batch, device), args.warmup,
                      args.fb_repeats, device)
        fb_rows.append([f"STgram-MFN {blocks}", str(args.fb_batch),
                        f"{statistics.median(times):.2f}", f"{min(times):.2f}",
                        f"{args.fb_batch / statistics.median(times):.1f}"])
        print(f"  done: fwd+bwd {blocks}", flush=True)

    rows: list[Row] = []
    builders = [
        ("dense AE (baseline)", _dense_steps),
        ("conformer AE", _conformer_steps),
        ("STgram-MFN mfn15", _stgram_steps),
    ]
    for name, build in builders:
        for seconds in (2, 10):
            train, score = build(seconds * SAMPLE_RATE, args.batch, device)
            for mode, step in (("train", train), ("score", score)):
                rows.append(Row(name, seconds, mode, args.batch,
                                _time(step, args.warmup, args.repeats, device)))
            print(f"  done: {name} {seconds} s", flush=True)

    print(f"\nSTgram-MFN forward + backward, {args.fb_batch} x 10 s clips "
          f"(median of {args.fb_repeats} after {args.warmup} warm-up)")
    _print_table(["model", "batch", "median s", "min s", "clips/s"], fb_rows)
    print(f"\nThroughput, batch {args.batch} (median of {args.repeats} after "
          f"{args.warmup} warm-up; log-mel front end included)")
    _print_table(
        ["model", "clip", "mode", "s/iter", "clips/s"],
        [[r.model, f"{r.seconds} s", r.mode, f"{r.per_iteration:.3f}",
          f"{r.clips_per_second:.1f}"] for r in rows],
    )


if __name__ == "__main__":
    main()
