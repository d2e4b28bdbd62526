"""Stage `train_conformer_ae@<input>`: fine-tune the pre-trained Conformer AE per machine type,
per SNR condition (see stages/train.py; `init: scratch` ignores the pre-trained weights)."""

from asdlib.detectors.conformer_ae import ConformerAEDetector, ConformerAEDetectorSettings

from stages.common import CONFORMER_PRETRAINED, run
from stages.train import train_stage

if __name__ == "__main__":
    run(lambda: train_stage("conformer_ae", ConformerAEDetectorSettings, ConformerAEDetector,
                            pretrained=CONFORMER_PRETRAINED / "model.pt"))
