"""Detectors: models wrapped as fit/score objects over manifest rows.

Every detector takes its settings dataclass and offers

* ``fit(train_rows, load, run_dir)``: train on the training normals in ``train_rows``
  (checkpoints, history and the final ``model.pt`` files go to ``run_dir``; an
  interrupted run resumes);
* ``restore(run_dir)``: load what ``fit`` wrote, without training;
* ``score(test_rows, load) -> DataFrame``: columns ``clip_id``, ``score`` (higher =
  more anomalous) and any extra score columns, in the order of ``test_rows``.

``load(row) -> np.ndarray`` reads one clip's float32 waveform; detectors never open
files themselves.

Each detector lives in its own module (``dense_ae``, ``conformer_ae``,
``stgram_mfn``); ``registry`` builds one by name. Nothing is imported here, so a
stage that trains one detector depends on that detector's code only.
"""
