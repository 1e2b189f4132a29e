"""Singer BATCH output: a window's records as whole files the loader bulk-loads.

The parts: ``config/batch.py`` (the ``batch_config`` setting), ``encoders.py`` (JSONL and
Parquet, UTC instants), ``naming.py`` (file names), ``root.py`` (the root must be ours),
``file_set.py`` (one window's files of one output stream, fsync'd), ``cleanup.py`` (files
the bookmark proves loaded).

Why not the SDK's batchers (``singer_sdk.contrib.batch_encoder_jsonl`` / ``_parquet``):
they chunk a whole stream's records into files named by a fresh uuid, with no tie to
any bookmark, so a batched stream's state cannot be incremental (meltano/sdk#976);
the Parquet one builds each file in memory (``Table.from_pylist``),
writes through fsspec without fsync, and all of them give every stream map the same
files. Here the unit is the export WINDOW, the one thing the bookmark counts:

* each window's records (typed, selected and stream-mapped exactly like RECORD output)
  go into one file set per output stream, rotated every ``batch_size`` records, each file
  encoded streaming (memory stays flat at any export size);
* a file is written as a hidden ``.partial`` (mode 0600, ``O_EXCL``), fsync'd, then
  atomically renamed and its directory fsync'd: a name the loader can see is complete;
* each file is announced in a BATCH message (flushed) as soon as it is complete, so the
  loader loads it while the tap writes the next; the STATE that moves the bookmark
  comes only after the window's last file (the sync writes them in that order);
* names carry the stream, the account (readable, plus a digest of the raw pair), the
  window, the pipeline and a per-run id: two runs, accounts or pipelines never collide,
  and the next run can tell which files are its pipeline's and which a bookmark covers
  (``naming.py``); the root must be a folder of the tap's user no one else can write
  (``root.py``).

Deletion (the README states it): a file not finished when its window fails or is
interrupted is removed at once (the window is exported again). Announced files
are the loader's to read, possibly after this process has exited, so the tap keeps them;
the NEXT run removes this pipeline's finished files whose window ends at or before the
bookmark it starts from, because that bookmark comes back from the loader only after it
loaded them; never another pipeline's, another format's or a ``.partial`` (``cleanup.py``).

What we reuse from the SDK: the ``batch_config`` setting and its shape, the BATCH message
shape (``encoding`` with ``format``/``compression``, ``manifest`` of ``file://`` URLs)
that SDK targets read with ``Sink.process_batch_files``.
"""
