"""The book: execute a profile's notebooks with papermill and build the Jupyter Book.

profiles   load and validate ``profiles/<name>.yaml`` against the notebooks' parameters
params     the checks of every profile parameter (type, range, the run specs it builds)
plan       ``describe(notebook, params)``: what a dry run prints (launches, identities, needs)
needs      what a notebook needs from the machine (GPUs, models, datasets, local files)
manifest   ``runs/<profile>/manifest.json``, read checked and updated under a lock by merging
keys       a notebook's cache key and the checksums of what it wrote (why it would execute)
execute    ``run_profile``: papermill in dependency order, cached by content hashes
pages      pages generated from runs/ (scoreboard, reproducibility, table of contents)
build      ``build_book``: assemble the build tree and call ``jupyter-book build``
check      ``check_book``: links, images, scoreboard and chapters of the built HTML
"""

from frpo.book.build import build_book
from frpo.book.check import check_book, check_profile
from frpo.book.execute import NotebookFailed, run_profile
from frpo.book.plan import describe
from frpo.book.profiles import load_profile

__all__ = [
    "NotebookFailed",
    "build_book",
    "check_book",
    "check_profile",
    "describe",
    "load_profile",
    "run_profile",
]
