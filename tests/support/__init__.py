"""What the tests and the benchmarks share: sites to run, clients to drive them, and clean-up.

- :mod:`.site` is a minimal Pyramid site wired to pyramid_notebook (the user
  is a request header); :mod:`.site_client` drives it under WebTest and
  :mod:`.site_server` runs it under waitress in its own process,
  :mod:`.site_uwsgi` under uWSGI with the shipped options.
- :mod:`.demo` writes the demo's INI and serves it in this process;
  :mod:`.pserve_site` and :mod:`.uwsgi_site` run it under ``pserve``, uWSGI
  and nginx with the shipped configuration files; :mod:`.servers` has what
  those runners share (free ports, waiting, stopping).
- :mod:`.login` logs in to the demo, once per transport (WebTest, requests,
  Chromium); :mod:`.chromium` drives headless Chromium and notebook pages.
- :mod:`.kernel_client` and :mod:`.ws_client` talk to kernels over websockets;
  :mod:`.frames` reads websocket frames back for the relay's test peers.
- :mod:`.notebooks` stops every notebook (``stop_all``) and checks that nothing survived.
- :mod:`.abuse` is one user starving the site, for the limits test and benchmark.
- :mod:`.stats` has the one percentile every benchmark and test reports.
- :mod:`.browser_artifacts` is a pytest plugin (loaded by ``tests/conftest.py``).
- :mod:`.sample_models` are SQLAlchemy models for the startup helpers' test;
  :mod:`.realapp` is a small app shaped like a real site, and
  :mod:`.daemon_cli` runs the daemon's command line.

Test modules and benchmarks import from here, never from a ``test_*.py`` module.
"""
