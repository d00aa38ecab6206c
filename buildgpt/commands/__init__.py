"""The commands of `python -m buildgpt`, one module each (see buildgpt/__main__.py)."""


class CommandError(Exception):
    """A mistake the user can fix; its message is one sentence that says what to do."""
