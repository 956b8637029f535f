"""seqseg: a reproduction of "Image Segmentation with Transformers" (Schmidt-Mengin, 2021).

``models`` (Seq2Seg, U-Net, ...), ``data`` (one file per dataset), ``matcher``, ``losses``,
``metrics``, ``engine`` (train / evaluate / checkpoint), ``config`` (profiles), ``plotting``
and ``widgets`` for the notebooks.
"""

__version__ = "0.1.0"
