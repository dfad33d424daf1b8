"""Analysis helpers behind the notebooks: reading run directories, matching KL, aggregating seeds.

One module per notebook topic (``frpo.analysis.<topic>``); notebooks hold no algorithm code.
"""
