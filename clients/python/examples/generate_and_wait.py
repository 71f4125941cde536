"""Generate, follow the progress, wait for the result and export it: the SDK end to end.

ATELIER_TARGET=127.0.0.1:50051 python generate_and_wait.py "a python CLI for celsius" out/
"""

from __future__ import annotations

import sys
from pathlib import Path

from atelier import AtelierClient, AtelierError, InvalidArgument, ProgressEventType, Version, VersionState


def generate_and_wait(client: AtelierClient, prompt: str, directory: Path) -> Version:
    """Starts a generation, prints its stages as they come, and exports it once COMPLETED."""
    version = client.generate(prompt)
    print(f"started {version.name}")
    for event in client.progress(version.name):
        if event.type == ProgressEventType.STAGE_STARTED:
            print(f"stage {event.stage}/{event.total_stages}: {event.message}")
    done = client.wait(version.name, timeout=60)
    if done.state == VersionState.COMPLETED:
        for path in client.export(done.name, directory):
            print(f"wrote {path}")
    elif done.error is not None:
        print(f"{done.state.value}: {done.error.reason}: {done.error.message}", file=sys.stderr)
    return done


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} PROMPT DIRECTORY", file=sys.stderr)
        return 2
    try:
        with AtelierClient() as client:  # ATELIER_TARGET and ATELIER_TOKEN
            done = generate_and_wait(client, argv[1], Path(argv[2]))
    except InvalidArgument as error:
        for violation in error.field_violations:
            print(f"{violation.field}: {violation.description}", file=sys.stderr)
        return 2
    except AtelierError as error:
        print(f"{error.code.name} [{error.reason}]: {error.message}", file=sys.stderr)
        return 1
    return 0 if done.state == VersionState.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
