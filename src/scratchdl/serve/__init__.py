"""``scratchdl serve``: a web page that looks inside the networks, and its JSON API.

- ``app``: the FastAPI app (routes, error handling) and ``static/`` (the page: HTML, JS and
  CSS, served locally);
- ``middleware``: the Host names the app answers to, its security headers, HEAD, and the
  origins that may make it work;
- ``connections``: uvicorn's connections, with a deadline for each request head and a bound
  on those waiting for one (cli_serve.server_config);
- ``inference``: the models by id, each layer's activations, the bounded inference pool, the
  test images;
- ``safety``: the limits on what a request may send (content types, body bytes and time,
  image pixels, JSON pixels);
- ``runs``: the learning curves of the training runs under ``--runs``, and their models.

Importing this package loads nothing: FastAPI, Starlette and uvicorn are imported by the
modules that use them, when the command runs.
"""
