"""seqseg: a reproduction of "Image Segmentation with Transformers" (Schmidt-Mengin, 2021).

``models`` (Seq2Seg, U-Net, ...), ``data`` (one file per dataset), ``matcher``, ``queries``,
``losses``, ``metrics``, ``experiments`` (what each experiment is made of, its presets and the
registry), ``engine`` (train / evaluate / checkpoint), ``config`` (the run configuration),
``plotting``, ``reports`` and ``widgets`` for the notebooks.
"""

__version__ = "0.1.0"
