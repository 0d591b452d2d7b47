"""Batch cloaking: whole folders, list files and darktable catalogs, resumable.

One job per module: ``sources`` (folder walk, list file), ``darktable`` (read-only catalog
selection), ``develop`` (raw files through ``darktable-cli``), ``naming`` (where each output
goes, hostile paths refused), ``manifest`` (what is finished, in the destination), ``settings``
(the options that define an output), ``work`` (one file, start to finish), ``backends`` (the
in-process engine or the local server), ``runner`` (threads, stop on Ctrl-C), ``ray_backend``
(the same work on a Ray cluster), ``progress`` and ``report``. See ``docs/batch.md``.
"""
