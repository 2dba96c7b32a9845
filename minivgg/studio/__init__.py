"""The studio: ``minivgg serve``, a local web page to pick images, paint regions, watch the picture
form, stop, resume and compare runs.

``runs`` is the runs folder (one folder per run, the gallery read back from it), ``jobs`` turns the
page's form into ``RunOptions`` (transfer's own validation), ``worker`` runs them one at a time in a
separate process through ``minivgg.run.transfer.execute``, ``app`` is the Starlette application (token,
Host check, server-sent events) and ``static/`` the page itself (HTML, CSS, plain JavaScript).
"""
