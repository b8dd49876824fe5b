"""One test module per built-in runbook: runbooks/<name>.py is tested by test_<name>.py here.

kit.py loads the built-in runbooks once and runs one as match.run does; one_worker.py,
two_workers.py and overlay.py are the small worlds that several runbooks' tests describe alike.
Anything else a test needs is built with tests/builders.py.
"""
