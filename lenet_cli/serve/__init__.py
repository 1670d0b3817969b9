"""`lenet serve`: a page to draw a digit and watch the network read it, and its JSON API.

- ``service.py``: what the server answers, without the web: a picture's bytes checked against the
  service's limits, then predicted and traced layer by layer through ``use/predict.py`` and
  ``teach/activations.py`` (the numbers of `lenet predict` and `lenet activations`);
- ``web.py``: the FastAPI app (``create_app``): the page, ``/api/*`` and ``/healthz``, every
  refusal as JSON ``{"error": ...}`` with a 4xx status;
- ``runner.py``: the listening socket and uvicorn, stopped cleanly by SIGINT or SIGTERM;
- ``static/``: the page itself, plain HTML, CSS and JavaScript (nothing fetched from elsewhere).

FastAPI, uvicorn and python-multipart come with the optional extra ``[serve]``; they are imported
when a server is made, never at import time.

May import: every folder below it (the top-level modules, data/, fast/, runs/, use/, teach/,
training/, scale/). Nothing above: ui/ and cli/ call it.
"""
