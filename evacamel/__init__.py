"""evacamel: find camels in desert images.

Predict a camel's segmentation mask and a depth map from a (background,
camel-on-background) image pair. Modules, in the order data flows through them:

* :mod:`evacamel.profiles`: how big a run is (``quick``, ``cpu``, ``full``)
* :mod:`evacamel.world`: the procedural desert and camels (exact depth), compositing
* :mod:`evacamel.dataset`: the on-disk dataset: format, writing, own photos, downloads
* :mod:`evacamel.loading`: batches for training: files, zip parts, packed cache, stream,
  statistics, device transforms
* :mod:`evacamel.depth`: depth estimators (exact and pretrained monocular)
* :mod:`evacamel.model`, :mod:`evacamel.losses`, :mod:`evacamel.metrics`
* :mod:`evacamel.train`, :mod:`evacamel.predict`, :mod:`evacamel.viz`
* :mod:`evacamel.cli`: ``evacamel <command>``
"""

__version__ = "0.1.0"
