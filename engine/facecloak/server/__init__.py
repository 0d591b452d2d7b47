"""The local engine server (``facecloak serve``): the models stay loaded for every plug-in.

GIMP starts a plug-in process per use and darktable calls its hook per exported file; loading
PyTorch and the models each time would take seconds. One server per user keeps them warm and
answers on a private Unix socket. Modules, one job each:

* ``paths``: the private runtime and state folders;
* ``lock``: one server per user;
* ``logsetup``: the rotating log file;
* ``listener``: the sockets, and who may connect;
* ``validation``: requests checked before anything is done with them;
* ``jobs``: jobs and the bounded queue;
* ``handlers``: what cloak and scrub jobs do with the engine;
* ``worker``: the threads that run jobs;
* ``connection``: one client connection, its requests and replies;
* ``app``: start-up, the accept loop, idle exit and shutdown.

The wire format is ``facecloak_bridge.wire`` (shared with the client); see docs/protocol.md.
"""
