"""What the tests (tests/) and the benchmark (bench/) both need: fresh databases, a local fake
of Gemini's API, and subprocesses that answer Ctrl-C.

Neither server/ nor storage/ ever imports it, and it is not installed (pyproject installs only
server* and storage*): tests and bench run from the repository's root, which puts it on the path.
"""
