"""Stage `train_stgram_mfn@<input>`: one STgram-MFN over all machine types, per SNR condition
(see stages/train.py)."""

from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings

from stages.common import run
from stages.train import train_stage

if __name__ == "__main__":
    run(lambda: train_stage("stgram_mfn", STgramMFNDetectorSettings, STgramMFNDetector))
