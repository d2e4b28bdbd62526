"""Stage `mix`: every clip at every SNR condition, into data/mix/<type>/<condition>.h5.

Writes data/mix/manifest.csv with one row per mixture (clip id
`<source clip id>@<condition>`). A corpus that is noisy already (MIMII: its rows
carry a `condition`) is stored as recorded, under its own conditions.
"""

from __future__ import annotations

import shutil

from asdlib.fileio import replace_dir
from asdlib.manifest import read_manifest, write_manifest
from asdlib.mixing import ClipReader, MixSettings, build_mixtures, store_native
from asdlib.parallel import ParallelSettings

from stages.common import DATA, params_section, run
from stages.work import work_dir
from stages.corpus_params import corpus_params

OUT = DATA / "mix"


def main() -> None:
    settings = params_section("mix", MixSettings)
    parallel = params_section("parallel", ParallelSettings)
    read_clip = ClipReader(resample=corpus_params().resample)
    manifest = read_manifest(DATA / "manifest.csv")
    tmp = OUT.with_name(".mix.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    work = work_dir("mix")
    if "condition" in manifest.columns:
        mixtures = store_native(manifest, tmp, work, settings, parallel, read_clip)
    else:
        mixtures = build_mixtures(manifest, DATA / "noise", tmp, work, settings, parallel, read_clip)
    mixtures["store"] = mixtures["store"].str.replace(str(tmp), str(OUT), regex=False)
    write_manifest(mixtures, tmp / "manifest.csv")
    replace_dir(tmp, OUT)
    shutil.rmtree(work, ignore_errors=True)  # finished shards stay there until published, for a rerun
    print(mixtures.groupby(["condition", "split"]).size().to_string())


if __name__ == "__main__":
    run(main)
