"""The notebook side: the daemon that runs one user's Jupyter server, and what runs inside that server.

Nothing on the web side imports this package; the two sides share only
:mod:`pyramid_notebook.protocol`.  One module per job:

* :mod:`.notebook_daemon`: the entry point, ``python -m pyramid_notebook.server.notebook_daemon``;
* :mod:`.command_line`: its ``start|fg|stop|status`` arguments, checked;
* :mod:`.daemon`: the daemonocle daemon, the only code that touches daemonocle's insides;
* :mod:`.worker`: one run of the server, from the context file to its end;
* :mod:`.jupyter`: Jupyter's configuration and the IPython and Jupyter folders;
* :mod:`.workspace`: the notebook root, the landing notebook, moving old work folders in;
* :mod:`.kernel_startup`: the site's startup script, run in every kernel;
* :mod:`.signals`: a clean signal state whoever launched the daemon.

Inside the running server: :mod:`.activity` (the idle timeout's idea of
use), :mod:`.graceful` (a stop that answers the requests in flight),
:mod:`.contents` (no file outside the root) and :mod:`.nodelay` (kernel
websockets without Nagle's delay).
"""
