"""Stage `noise`: the noise bank (data/noise/<name>.wav), NOISEX-92 or the built-in synthetic one."""

from __future__ import annotations

import shutil

from asdlib.fileio import replace_dir
from asdlib.noise_bank import NoiseBankSettings, write_noise_bank

from stages.common import DATA, params_section, run

OUT = DATA / "noise"


def main() -> None:
    settings = params_section("noise", NoiseBankSettings)
    tmp = OUT.with_name(".noise.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    written = write_noise_bank(tmp, settings)
    replace_dir(tmp, OUT)
    print(f"noise bank: {len(written)} noises from {settings.source}")


if __name__ == "__main__":
    run(main)
