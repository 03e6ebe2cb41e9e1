"""``scratchdl serve``: a web page that looks inside the networks, and its JSON API.

- ``app``: the FastAPI app (routes, error handling, security headers) and ``static/`` (the
  page: HTML, JS and CSS, served locally);
- ``inference``: the models by id, each layer's activations, the bounded inference pool, the
  test images;
- ``safety``: the limits on what a request may send (body bytes, image pixels, JSON pixels);
- ``runs``: the learning curves of the training runs under ``--runs``.

Importing this package loads nothing: FastAPI is imported by ``app`` alone.
"""
