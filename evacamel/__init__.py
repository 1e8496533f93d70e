"""evacamel: find camels in desert images.

Predict a camel's segmentation mask and a depth map from a (background,
camel-on-background) image pair. Modules, in the order data flows through them:

* :mod:`evacamel.profiles`: how big a run is (``quick``, ``cpu``, ``full``)
* :mod:`evacamel.synth`: the procedural desert world and camels (exact depth)
* :mod:`evacamel.data`: compositing, the on-disk dataset, statistics, downloads, loaders
* :mod:`evacamel.depth`: depth estimators (exact and pretrained monocular)
* :mod:`evacamel.model`, :mod:`evacamel.losses`, :mod:`evacamel.metrics`
* :mod:`evacamel.train`, :mod:`evacamel.predict`, :mod:`evacamel.viz`
* :mod:`evacamel.cli`: ``evacamel <command>``
"""

__version__ = "0.1.0"
