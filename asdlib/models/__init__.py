"""Detector architectures: dense AE baseline, STgram-MFN, Conformer AE (no file I/O, no training).

One module per architecture (``dense_ae``, ``stgram_mfn`` with ``tgram``,
``mobilefacenet`` and ``arcface``, ``conformer_ae`` with ``conformer``; ``snr_blstm``
for the SNR estimator). Nothing is imported here, so code that needs one model (and
the DVC stage that runs it) depends on that model's modules only.
"""
