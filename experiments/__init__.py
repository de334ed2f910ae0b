"""The ``bidenv`` command line and the scripts that produce the README's tables and figures."""
