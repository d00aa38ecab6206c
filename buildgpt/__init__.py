"""buildgpt: the companion library of "Build a Large Language Model From Scratch".

Most modules are exported from the chapters in `solutions/` by `python -m autograder release`
(each names the chapter it came from); `resources` and `viz` are written by hand.
"""

__version__ = "0.1.0"
