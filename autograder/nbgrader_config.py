# nbgrader configuration of the course folder that `python -m autograder grade` builds.
# It is a plain nbgrader course: `nbgrader autograde 00-pytorch`, `nbgrader generate_feedback`,
# `nbgrader export` all work in it. See book/instructor-guide.md.
c = get_config()  # noqa: F821 (nbgrader defines it)

c.CourseDirectory.course_id = "buildgpt"

# A stub is what students see in place of a solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Student code gets this long per cell while grading (chapter training cells are a few minutes at most).
c.ExecutePreprocessor.timeout = 600
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True

# Feedback shows a failing hidden test by its message only, never its code.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from autograder.feedback import HideHiddenTests  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
