"""The hyprstream conformance kit: checks a hyprstream deployment against ``spec/``.

It starts with what every later check needs: a way to run a server process and talk to
it (``conformance.process``), the naive window oracle and the stateful model of the window
engine (``conformance.oracle``, ``conformance.machine``), reused by ``tests/property``.
"""
