"""Corpora: download, checksum, safe extraction and preparation into manifests.

Submodules: ``dcase_layout`` (strict scan of DCASE-layout folders), ``download``
(resumable HTTP with checksums), ``archives`` (safe extraction and the archive
list ``archives.json``), and one module per corpus (``dcase2020``, ``mimii``,
``noisex92``, ``audioset_music``; ``synthetic`` builds the default corpus).
Nothing is imported here so that ``import asdlib.corpora.X`` stays cheap.
"""
