"""One test module per built-in runbook: runbooks/<name>.py is tested by test_<name>.py here."""
