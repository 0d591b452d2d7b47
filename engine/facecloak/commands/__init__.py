"""The sub-commands of ``facecloak``, one module each.

A module here is a command when it defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. ``facecloak.cli`` finds them itself, so a new command is one new file.
Keep module-level imports light: heavy ones (torch, the models) belong inside ``run`` so that
commands that do not need them start fast.
"""
