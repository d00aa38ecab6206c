"""The one exception the command line turns into a plain sentence instead of a traceback."""


class UserError(Exception):
    """A mistake a person can make (a missing folder, a bad notebook, an unknown chapter).

    Its message is one sentence that says what is wrong and what to do.
    """
