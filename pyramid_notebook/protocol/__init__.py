"""What the web side and the notebook side share, and nothing else.

The web process (views, proxy, manager) and a user's notebook daemon
(:mod:`pyramid_notebook.server`) never import each other's code and never
talk over a socket: they share a work folder (:mod:`.workfolder`), the
context file in it (:mod:`.context`), the daemon's command line and its pid
file (:mod:`.processes` tells a daemon from any other process by them).
Keeping that contract in one small package is what lets either side change
without the other noticing.
"""
