"""The on-disk dataset: write it (from the procedural world or your own folders), read it.

The layout is the one of ``ARCHITECTURE.md`` (the seed's, and more)::

    <root>/
      meta.json            format, generator, seed, sizes, counts, depth units; "complete"
      dataset_info.csv     one row per composite (see INDEX_COLUMNS)
      sources.json         the backgrounds and camels: split, seed or original file,
                           camera (backgrounds), meters_per_side/foot_v/attributes (camels)
      bg/bg_%04d.<ext>     backgrounds (CLAHE applied if asked), source_size
      fg/fg_%04d.png       camel sprites, RGBA, camel_size
      bg_depth/bg_%04d.png 16-bit, depth_size: the empty background's depth (m * 64)
      fg_bg/img_%08d.<ext> composites, source_size
      mask/img_%08d.png    8-bit L, 0/255, source_size: exactly the visible camel pixels
      depth/img_%08d.png   16-bit, depth_size: meters * 64 (nearest-sampled, no blending)
      dataset_<k>.zip      optional zip parts (``zip_parts``): the rows of part k
      dataset_bg.zip       with zip parts: bg/, bg_depth/, fg/ and sources.json

How it is written (:func:`~evacamel.dataset.write.write_dataset`):

1. **Plan** (cheap, no pixels): which backgrounds and camels are held out for test
   (``profile.test_fraction`` of each, drawn from the seed), and for every sample its
   background, camel and split. Train samples pair train backgrounds with train camels
   only, test samples test with test; the (background, camel) pairs of a split are
   visited in a seeded order, so every pair is used before any repeats, in runs that
   share a background (see ``_pair_sequence``).
2. **Sources**: backgrounds and camels are rendered (or read from your folders) once, in
   fixed groups, and written to ``bg/``, ``fg/``, ``bg_depth/``; then ``sources.json``.
   (When ``depth_size`` is smaller than ``source_size``, the compositing reads the
   background depth at full size from ``.work/bg_depth_full/``, so occlusion is exact.)
3. **Samples**, in fixed chunks of ``chunk_size`` samples, over worker processes. A
   chunk's random numbers come from ``(seed, chunk index)`` alone, and workers read the
   sources back *from the written files*, so the bytes do not depend on the number of
   workers, on sharding, or on interruptions. Each chunk's index rows go to
   ``.work/chunks/`` when all its files are written.
4. **Finalize**: ``dataset_info.csv`` (the chunks' rows in order), the zip parts, then
   ``meta.json`` with ``"complete": true``, last; ``.work/`` is removed.

Every file is written to a temporary name in its folder and renamed (``os.replace``),
so a killed run never leaves a half-written file. Rerun, it skips every chunk whose rows
and files exist and finishes the rest; on a complete dataset it changes nothing. A
folder that holds another dataset (other seed, sizes, profile, sources...) or files that
are not a dataset is refused, never overwritten.

Determinism: the same arguments give byte-identical files (fixed JPEG settings: quality
from the profile, 4:2:0, baseline, not optimised; mask and depth PNGs by
:func:`encode_png_gray` with a fixed filter and zlib level; torch single-threaded in the
compositing), whatever ``workers`` or ``shard``.
(On the same library versions: another libjpeg or zlib may encode differently.)

Sharding (several machines): ``shard=(i, n)`` writes the sources and the chunks
``c`` with ``c % n == i``. A shard that finds every chunk done finalizes; otherwise copy
the shards' folders into one (``.work/`` included, e.g. ``rsync -a``) and run
``evacamel make-dataset ... --finalize`` (or any unsharded run, which also writes what is
missing).

Your own pictures (see :mod:`evacamel.dataset.sources`): with your own backgrounds there is
no camera and no exact depth, so compositing uses the seed's recipe (``mode="seed"``),
no ``depth/`` or ``bg_depth/`` file is written and ``meta.json["depth"]["source"]`` is
``"none"``; ``dataset_info.csv`` still names the ``depth/`` files, which ``evacamel
depth`` (a monocular estimator) writes later. Your own camels work with either mode.

Paths in the index never leave the dataset folder: every reader and writer goes through
:func:`~evacamel.dataset.format.resolve_in_dataset` (no absolute paths, no ``..``, no
backslashes or drive letters, no symlinks leading outside).

The code is cut by job: :mod:`~evacamel.dataset.format` (the one owner of the format:
names, the folder list, meta.json, the index, the path check),
:mod:`~evacamel.dataset.plan` (what to write, no pixels),
:mod:`~evacamel.dataset.worker` (one process: sources, chunks),
:mod:`~evacamel.dataset.write` (the stages, the process pool, finalize, zip parts,
:func:`~evacamel.dataset.write.ensure_dataset`), :mod:`~evacamel.dataset.codec` (image
bytes), :mod:`~evacamel.dataset.atomic` (atomic writes), :mod:`~evacamel.dataset.sources`
(your own photos), :mod:`~evacamel.dataset.download` and :mod:`~evacamel.dataset.registry`.
"""
