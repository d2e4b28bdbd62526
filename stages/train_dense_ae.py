"""Stage `train_dense_ae@<input>`: the DCASE 2020 baseline, per SNR condition (see stages/train.py)."""

from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings

from stages.common import run
from stages.train import train_stage

if __name__ == "__main__":
    run(lambda: train_stage("dense_ae", DenseAEDetectorSettings, DenseAEDetector))
