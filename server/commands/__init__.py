"""The ``pixline`` command line (``cli``), one module per command with ``register(subparsers)``, and
the start-up wiring that builds a process's store, plugins, recipes and queue from its settings
(``wiring``, ``gunicorn_app``). The top of the import graph: nothing imports this package."""
