"""pixline's processes: ``http`` (the falcon service), ``queue`` (render jobs) and ``commands`` (the
``pixline`` command line and start-up wiring), over the engine. Imports run one way:
commands → http → queue → engine; ``settings`` is a leaf any of them may import
(docs/architecture.md, "Layout")."""
