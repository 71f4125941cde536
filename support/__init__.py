"""What the tests (tests/) and the benchmark (bench/) both need: fresh databases and a local
fake of Gemini's API.

Neither server/ nor storage/ ever imports it, and it is not installed (pyproject installs only
server* and storage*): tests and bench run from the repository's root, which puts it on the path.
"""
